"""Named errors. Library code raises these; only `robotaxi.cli` turns them into exit codes.

Every message says what was wrong and what to do about it, in one line.
"""

from typing import NoReturn


class RobotaxiError(Exception):
    """Base of every error this project raises on purpose (bad input, missing data)."""


class ConfigError(RobotaxiError):
    """A configuration value or command-line option is invalid."""


class DataNotFoundError(RobotaxiError):
    """A data file or folder the run needs is missing."""


class MapBuildError(RobotaxiError):
    """A road network could not be built or loaded (malformed input, netconvert failed)."""


class WorldError(RobotaxiError):
    """The traffic simulation could not start or was asked something impossible."""


class InvalidTransitionError(RobotaxiError):
    """A trip was asked to move to a state the life cycle does not allow from its current one."""


class DispatchError(RobotaxiError):
    """A dispatch policy was misconfigured or produced an inconsistent assignment."""


class ScenarioError(RobotaxiError):
    """A driving scenario is unknown or its file is malformed."""


class MissingExtraError(RobotaxiError, ImportError):
    """An optional part of robotaxi was used without its extra (`pip install robotaxi[NAME]`).

    Also an `ImportError`, since that is what it replaces: code probing for the optional
    part with `except ImportError` keeps working."""

    @classmethod
    def raise_for(cls, exc: ModuleNotFoundError, *, extra: str, what: str) -> NoReturn:
        """Turn a failed import of the extra's packages (named `extra…`) into this error, with
        the install command; any other missing module is re-raised as it is."""
        missing = (exc.name or "").split(".")[0]
        if not missing.startswith(extra):
            raise exc
        raise cls(
            f"{what} is an optional extra and is not installed (no module {missing}): "
            f"pip install robotaxi[{extra}]",
            name=exc.name,
        ) from exc
