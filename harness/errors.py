"""One exception type for everything a user can fix: the CLI prints it as one clear line, no traceback."""


class HarnessError(Exception):
    """A problem with the user's input or environment, with a hint on what to do about it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message
