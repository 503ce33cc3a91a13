"""Click commands, one module per stage."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
