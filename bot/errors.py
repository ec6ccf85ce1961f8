"""The small exception tree of cpubot, translated into statuses at each edge."""


class CpuBotError(Exception):
    """Base of every error cpubot raises on purpose; its text is a full sentence."""


class ConfigError(CpuBotError):
    """A setting is missing or malformed; the message names the variable."""


class InvalidInput(CpuBotError):
    """A request field is malformed; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotAllowed(CpuBotError):
    """The caller may not check this account or use this recipient."""


class NotAuthenticated(CpuBotError):
    """The caller did not prove who it is."""


class NoData(CpuBotError):
    """CloudWatch has no CPU datapoint for the instance in the look-back window."""


class AwsError(CpuBotError):
    """AWS answered with an error we do not handle more precisely."""


class AccessDenied(AwsError):
    """AWS refused to let us assume the role or read the metric."""


class AwsUnavailable(AwsError):
    """AWS throttled us or did not answer in time; the call may be retried later."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SmsFailed(CpuBotError):
    """The SMS provider refused the message or could not be reached.

    ``retryable`` says the provider asked us to try again later; ``uncertain`` says
    the answer was lost, so the message may have gone out all the same;
    ``unavailable`` says the provider, not the message, is at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        uncertain: bool = False,
        unavailable: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.uncertain = uncertain
        self.unavailable = unavailable or retryable or uncertain

    @property
    def refused(self) -> bool:
        """Return True when the provider refused this message for good."""
        return not self.unavailable


class SlackUnavailable(CpuBotError):
    """Slack could not be reached to open a Socket Mode connection."""


class StoreUnavailable(CpuBotError):
    """The database could not be reached."""
