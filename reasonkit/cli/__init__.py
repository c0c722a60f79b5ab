"""The `reasonkit` command. Each concern has its own module; heavy imports live inside the commands."""

from __future__ import annotations

import sys

import typer

from reasonkit import __version__
from reasonkit.errors import ReasonkitError

_APP_SETTINGS = dict(
    name="reasonkit",
    help="Evaluate and post-train video vision-language reasoning models for physical AI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app = typer.Typer(**_APP_SETTINGS)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reasonkit {__version__}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Evaluate and post-train video vision-language reasoning models for physical AI."""


def _mount() -> None:
    from reasonkit.cli import data, demo, evaluate, infer, plugins, score, synth, train

    app.command("eval", help=evaluate.eval_command.__doc__)(evaluate.eval_command)
    app.command("score", help=score.score_command.__doc__)(score.score_command)
    app.command("infer", help=infer.infer_command.__doc__)(infer.infer_command)
    app.command("plugins", help=plugins.plugins_command.__doc__)(plugins.plugins_command)
    app.command("demo", help=demo.demo_command.__doc__)(demo.demo_command)
    app.add_typer(data.app, name="data")
    app.command("train", help=train.train_command.__doc__)(train.train_command)
    app.add_typer(synth.app, name="synth")


def _mount_plugin_commands() -> None:
    from reasonkit.plugins import get_plugins

    for reg in get_plugins().registry["commands"].values():
        sub = reg.load()
        sub = sub if isinstance(sub, typer.Typer) else sub()
        app.add_typer(sub, name=reg.name)


def build_app() -> typer.Typer:
    """The root app with the built-in and plugin command groups (rebuilt per call: tests swap plugins)."""
    global app
    app = typer.Typer(**_APP_SETTINGS)
    app.callback()(root)
    _mount()
    _mount_plugin_commands()
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning ReasonkitError into one line on stderr and exit code 2."""
    try:
        rv = build_app()(args=argv, prog_name="reasonkit", standalone_mode=False)
        if isinstance(rv, int):  # click returns typer.Exit(n)'s code in non-standalone mode
            return rv
    except ReasonkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted (results written so far are kept)", err=True)
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
