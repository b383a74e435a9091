"""The API's token authentication (its own module: the REST framework settings import it before any view)."""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox import auth as knox_auth


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's token check without its sweep of the user's other tokens on every request.

    knox reads all of a user's tokens on each request to delete expired ones; here the presented token alone is
    checked (an expired one is refused and deleted), and the sweep runs when the user logs in.
    """

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
