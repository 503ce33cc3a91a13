"""The ``hyena-deploy`` command line: one subcommand per stage, one-line errors, non-zero exits."""

from __future__ import annotations

import sys

import click

from hyena_deploy.commands import COMMANDS
from hyena_deploy.errors import HyenaDeployError


class _Group(click.Group):
    """Prints every user error (bad usage included) as one ``error: ...`` line on stderr."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except HyenaDeployError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)


@click.group(cls=_Group, commands=COMMANDS)
@click.version_option(package_name="hyena-deploy")
def main() -> None:
    """Export Hyena models to ONNX / TensorRT with FFT convolutions rewritten, and prove parity."""
