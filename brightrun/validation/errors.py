"""The error of the data contracts."""

from __future__ import annotations

from brightrun.errors import BrightRunError


class ContractError(BrightRunError):
    """A suite in expectations/ is missing or invalid, or cannot run on its table."""
