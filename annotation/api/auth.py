"""API tokens for scripts: issued per login, expiring, revocable, void after a password change (django-rest-knox).

`POST /api/auth/token/` with a username and password answers a new token and its expiry. Every login gets its
own token, so logging one script out leaves the others working; `POST /api/auth/logout/` revokes the token
that calls it, `POST /api/auth/logout-all/` every token of the user. A token unused for `LUMEN_TOKEN_TTL_HOURS`
expires, and none lives longer than `LUMEN_TOKEN_MAX_HOURS`. Failed logins count towards django-axes' lockout
(the same counter as the login form and the admin) and the endpoint is throttled per client address.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from knox import views as knox_views
from knox.models import get_token_model
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from annotation.api.authentication import TokenAuthentication

_TOKEN_RESPONSE = inline_serializer(
    "TokenResponse", {"token": serializers.CharField(), "expiry": serializers.DateTimeField(allow_null=True)}
)


class TokenLoginView(knox_views.LoginView):
    """Exchange a username and password for a new API token."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "login"

    @extend_schema(request=AuthTokenSerializer, responses={200: _TOKEN_RESPONSE})
    def post(self, request: Request, format=None) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):
                # django-axes refused to even check the password: too many failures from this client and name.
                return Response(
                    {"detail": "Too many failed logins: this account is locked for this address; try again later."},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        get_token_model().objects.filter(user=user, expiry__lt=timezone.now()).delete()
        request.user = user
        return super().post(request, format=format)


class TokenLogoutView(knox_views.LogoutView):
    """Revoke the token this request is made with."""

    authentication_classes = (TokenAuthentication,)

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format=None) -> Response:
        return super().post(request, format=format)


class TokenLogoutAllView(knox_views.LogoutAllView):
    """Revoke every token of the user making the request."""

    authentication_classes = (TokenAuthentication,)

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format=None) -> Response:
        return super().post(request, format=format)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="lumen-revoke-tokens-on-password-change")
def revoke_tokens_on_password_change(sender, instance, update_fields=None, **kwargs) -> None:
    """A new password voids every API token of the user, whichever path changed it (form, admin, command).

    (Browser sessions end by themselves: Django's session hash includes the password.)
    """
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        get_token_model().objects.filter(user_id=instance.pk).delete()
