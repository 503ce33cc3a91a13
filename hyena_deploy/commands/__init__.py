"""Click commands, one module per stage."""

from __future__ import annotations

import click

from hyena_deploy.commands.bench import bench
from hyena_deploy.commands.build import build
from hyena_deploy.commands.check import check
from hyena_deploy.commands.distill import distill_command
from hyena_deploy.commands.export import export
from hyena_deploy.commands.generate import generate
from hyena_deploy.commands.inspect import inspect
from hyena_deploy.commands.package import package
from hyena_deploy.commands.rewrite import rewrite

COMMANDS: list[click.Command] = [export, rewrite, check, inspect, build, bench, generate, package, distill_command]
