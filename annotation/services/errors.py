"""Errors of the annotator-facing services that name the bad field (the API answers 400 with it)."""


class WorkspaceInputError(ValueError):
    """A workspace request carries a bad value; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
