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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reasonkit {__version__}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Evaluate and post-train video vision-language reasoning models for physical AI."""


def _registered(kind: str) -> dict[str, str]:
    """name -> description of the registered plugins of ``kind``, for help texts; empty when the plugins cannot
    be loaded (the command that needs them reports why), so `--help` always works."""
    from reasonkit.errors import PluginError
    from reasonkit.plugins import get_plugins

    try:
        registry = get_plugins().registry[kind]
    except PluginError:
        return {}
    return {name: reg.meta.get("description", "") for name, reg in sorted(registry.items())}


def _mount(app: typer.Typer) -> None:
    from reasonkit.cli import compare, data, demo, evaluate, infer, plugins, report, score, synth, train

    benchmarks = ", ".join(_registered("benchmarks")) or "(none installed)"
    app.command("eval", help=f"{evaluate.eval_command.__doc__} Benchmarks: {benchmarks}.")(evaluate.eval_command)
    app.command("score", help=score.score_command.__doc__)(score.score_command)
    app.command("compare", help=compare.compare_command.__doc__)(compare.compare_command)
    app.command("report", help=report.report_command.__doc__)(report.report_command)
    app.command("infer", help=infer.infer_command.__doc__)(infer.infer_command)
    app.command("plugins", help=plugins.plugins_command.__doc__)(plugins.plugins_command)
    app.command("demo", help=demo.demo_command.__doc__)(demo.demo_command)
    app.add_typer(data.app, name="data")
    app.add_typer(train.build_train_app(_registered("trainers")), name="train")
    app.add_typer(synth.app, name="synth")


def _mount_plugin_commands(app: typer.Typer) -> None:
    from reasonkit.errors import PluginError
    from reasonkit.plugins import get_plugins

    try:
        commands = list(get_plugins().registry["commands"].values())
    except PluginError as exc:  # a broken plugin must not take `--help` and `reasonkit plugins` down with it
        typer.echo(f"warning: plugin commands not loaded: {exc}", err=True)
        return
    for reg in commands:
        sub = reg.load()
        sub = sub if isinstance(sub, typer.Typer) else sub()
        app.add_typer(sub, name=reg.name)


def build_app() -> typer.Typer:
    """The root app with the built-in and plugin command groups (built per call: tests swap plugins)."""
    app = typer.Typer(**_APP_SETTINGS)
    app.callback()(root)
    _mount(app)
    _mount_plugin_commands(app)
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
    except CLICK_ERRORS as exc:  # usage errors (missing/unknown option, bad value, unknown command)
        exc.show()
        return exc.exit_code
    return 0


def _click_exception_types() -> tuple[type[Exception], ...]:
    """The ClickException class(es) typer raises. typer >= 0.22 vendors its own click (``typer._click``), whose
    exceptions are not ``click.ClickException``; both are found through the MRO of typer's public
    ``BadParameter``, and a separately installed click is included in case a plugin command uses it."""
    found = [cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"]
    try:
        import click

        found.append(click.ClickException)
    except ImportError:  # pragma: no cover - click is optional once typer vendors it
        pass
    return tuple(dict.fromkeys(found))


CLICK_ERRORS = _click_exception_types()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
