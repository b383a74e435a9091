"""The API's token authentication (its own module: the REST framework settings import it before any view)."""

import binascii
from hmac import compare_digest

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox import auth as knox_auth
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions

from annotation.compiled import CompiledQuery


def _tokens_with_key(token_key: str):
    return get_token_model().objects.filter(token_key=token_key).select_related("user")


# Every API request reads its token: the query is compiled once per process (annotation.compiled).
_TOKENS_WITH_KEY: CompiledQuery = CompiledQuery(_tokens_with_key)


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's token check without its sweep of the user's other tokens on every request.

    knox reads all of a user's tokens on each request to delete expired ones; here the presented token alone is
    checked (an expired one is refused and deleted), and the sweep runs when the user logs in.
    """

    def authenticate_credentials(self, token: bytes):
        """knox's check, step for step, with the token's query compiled once (`_TOKENS_WITH_KEY`)."""
        message = _("Invalid token.")
        try:
            key = token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(message) from None
        if "\x00" in key:  # no token has one, and PostgreSQL refuses it in a parameter
            raise exceptions.AuthenticationFailed(message)
        for auth_token in _TOKENS_WITH_KEY.rows(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(key)
            except (TypeError, binascii.Error):
                raise exceptions.AuthenticationFailed(message) from None
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed(message)

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class TokenScheme(OpenApiAuthenticationExtension):
    """The token as the OpenAPI schema describes it: `Authorization: Token <key>`."""

    target_class = "annotation.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
