"""The ``hyena-deploy`` command line: one subcommand per stage, one-line errors, non-zero exits."""

from __future__ import annotations

import click

from hyena_deploy.errors import HyenaDeployError


class _Group(click.Group):
    """Turns HyenaDeployError (and a few OS errors) into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HyenaDeployError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="hyena-deploy")
def main() -> None:
    """Export Hyena models to ONNX / TensorRT with FFT convolutions rewritten, and prove parity."""


def _register() -> None:
    # Each stage lives in its own module under hyena_deploy.commands.
    from hyena_deploy.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
