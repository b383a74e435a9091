"""Limit/offset paging with a maximum page and strict parameters: a bad `limit` or `offset` is a 400 naming it."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

from annotation.api.filters import query_int

MAX_OFFSET = 2**62  # far past any list; keeps the SQL OFFSET within a bigint


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request) -> int | None:
        return query_int(request, self.limit_query_param, lowest=1, highest=self.max_limit, default=self.default_limit)

    def get_offset(self, request) -> int:
        return query_int(request, self.offset_query_param, lowest=0, highest=MAX_OFFSET, default=0)
