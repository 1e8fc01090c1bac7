"""`ima ask` and `ima eval`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ima.cli import options
from ima.config import Settings
from ima.store import Store


@click.command("ask")
@click.argument("question", required=False, default="")
@click.option("--as-of", "as_of", help="Answer as of this instant (ISO 8601 or epoch seconds).")
@options.answer_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer object as JSON.")
@click.option(
    "--chat", "chat", is_flag=True,
    help="Keep talking: after each answer, ask a follow-up (\"and what about Nagoya?\"). "
    "With --llm, the model chats and searches when a turn is about now. An empty line, "
    "'exit' or Ctrl-D ends it.",
)  # fmt: skip
@click.pass_obj
def ask_cmd(
    settings: Settings,
    question: str,
    as_of: str | None,
    persona: str,
    llm: str | None,
    llm_model: str,
    as_json: bool,
    chat: bool,
) -> None:
    """Answer a question about what is happening, citing the posts that say so.

    Every [n] points at a post; with an LLM, its citations are checked and an answer
    whose citations do not hold is replaced by the extractive one.
    """
    from ima.answer.ask import ask

    instant = options.instant(as_of)
    if chat and as_json:
        raise click.UsageError("--chat prints a conversation; it cannot be --json")
    if not chat and not question:
        raise click.UsageError("a QUESTION is needed (or --chat to ask one at the prompt)")
    settings = options.with_llm(settings, llm, llm_model)
    backend, mode = options.backend(settings)
    store = settings.open_store()
    vectors = options.vectors_of(store)
    if chat:
        from ima.answer.terminal import chat as talk

        try:
            talk(store, read=_read_question, write=lambda text: click.echo(text, nl=False),
                 backend=backend, persona=persona, as_of=instant, first=question,
                 semantic=vectors.semantic if vectors else None)  # fmt: skip
        finally:
            store.close()
        return
    streamed = not as_json and backend is not None

    def show(piece: str) -> None:
        click.echo(piece, nl=False)

    try:
        answer = ask(
            store,
            question,
            as_of=instant,
            persona=persona,
            backend=backend,
            mode=mode,
            semantic=vectors.semantic if vectors else None,
            on_text=show if streamed else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
        return
    if not streamed:
        click.echo(answer.text)
    else:
        click.echo()
    if answer.fallback_reason:
        click.echo(f"(the LLM's answer failed verification: {answer.fallback_reason})", err=True)
    for c in answer.citations:
        when = c.post.created_at.strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"  [{c.number}] @{c.post.author.handle} · {when} · {c.post.url or c.post.id}")
    age = answer.evidence_age_s
    freshness = "" if age is None else f"; newest evidence {_age_words(age)} old"
    click.echo(f"  ({answer.backend}, {answer.persona}{freshness})", err=True)


def _read_question() -> str | None:
    """The next question at the prompt; None at the end of input (Ctrl-D, Ctrl-C)."""
    try:
        return click.prompt("you", default="", show_default=False, prompt_suffix="> ")
    except click.Abort:
        return None


def _age_words(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@click.group("eval", invoke_without_command=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Stream generator seed.")
@click.option("--vectors/--no-vectors", default=True, show_default=True)
@click.option("--real", "real", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL of real posts and questions a person wrote (README \"Evaluation\"; "
                   "`python -m ima.bench.tweetqa` builds one): scored beside BM25+recency.")
@options.answer_options
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    seed: int,
    persona: str,
    vectors: bool,
    real: Path | None,
    llm: str | None,
    llm_model: str,
    as_json: bool,
) -> None:
    """Temporal QA on a generated stream whose facts change (README "Evaluation").

    Reports accuracy, use of the newest evidence, citation validity, "nothing
    found" where nothing is known, and future leaks. Uses a temporary store.
    With --real, answers real questions over real posts instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    import tempfile

    from ima.bench.temporal import run
    from ima.vectors.embedder import default_embedder

    if real is not None:
        from ima.bench import realtext

        with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
            try:
                report = realtext.run(
                    lambda: Store(Path(tmp) / "data"), real, persona=persona,
                    embedder=default_embedder() if vectors else None,
                    progress=options.progress,
                )  # fmt: skip
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--real") from None
        click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json
                   else "\n".join(realtext.table(report)))  # fmt: skip
        return
    backend, _mode = options.backend(options.with_llm(ctx.obj, llm, llm_model))
    with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
        report = run(
            lambda: Store(Path(tmp) / "data"),
            seed=seed,
            persona=persona,
            backend=backend,
            embedder=default_embedder() if vectors else None,
            progress=options.progress,
        )
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    rows = [
        ("questions", f"{report['questions']} ({report['posts']} posts, seed {seed})"),
        ("accuracy (known facts)", f"{report['accuracy']:.1%}"),
        ("newest evidence cited", f"{report['newest_evidence']:.1%}"),
        ("'nothing found' when unknown", f"{report['nothing_found_when_unknown']:.1%}"),
        ("citation validity", f"{report['citation_validity']:.1%}"),
        ("future leaks", str(report["future_leaks"])),
    ]
    if backend is not None:
        rows.append(
            (
                "LLM answers (verified / replaced)",
                f"{report['llm_answers_verified']} / {report['llm_answers_replaced']}",
            )
        )
    options.echo_rows(rows)
    for case in report["cases"]:
        if not case["correct"] or case["citation_problems"] or case["future_leak"]:
            click.echo(f"\n✗ {case['question']} @ {case['as_of']}\n{case['answer']}")


@eval_cmd.command("trends")
@click.option("--seed", type=int, default=7, show_default=True, help="Stream generator seed.")
@click.option("--hours", type=click.FloatRange(2, 24), default=5, show_default=True,
              help="Stream time to generate.")  # fmt: skip
@click.option("--real", "real", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Score a real stream instead: JSONL of posts with `event` labels (`python "
                   "-m ima.bench.crisis_stream` builds one), stored by `ima ingest` alone and "
                   "asked for stories an hour after each event's 50th post.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_trends(seed: int, hours: float, real: Path | None, as_json: bool) -> None:
    """Trend detection on a generated stream with planted events, floods and chatter, or
    on a real labelled stream (README "Trends"): recall, precision, delay, floods,
    citation validity."""
    import tempfile

    from ima.bench.trending import run

    if real is not None:
        from ima.bench import real_trends

        try:
            found = real_trends.run(real, progress=options.progress)
        except real_trends.LabelledError as exc:
            raise click.BadParameter(str(exc), param_hint="--real") from None
        as_text = json.dumps(found, ensure_ascii=False, indent=2) if as_json else None
        click.echo(as_text or "\n".join(real_trends.lines(found)))
        return
    with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
        report = run(lambda: Store(Path(tmp) / "data"), seed=seed, hours=hours,
                     progress=options.progress)  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    delay = report["median_delay_s"]
    rows = [
        ("stream", f"{report['posts']:,} posts, {report['events']} planted events, seed {seed}"),
        ("recall", f"{report['recall']:.1%}"),
        ("precision", f"{report['precision']:.1%} ({report['stories']} stories)"),
        ("median detection delay", "–" if delay is None else f"{delay:.1f} s of stream time"),
        ("stories per found event", f"{report['stories_per_event']:.2f}"),
        ("flood stories", str(report["flood_stories"])),
        ("citation validity", f"{report['citation_validity']:.1%}"),
    ]
    options.echo_rows(rows)
    for event in report["per_event"]:
        delay = "missed" if event["delay_s"] is None else f"{event['delay_s']:.0f} s"
        click.echo(f"  {event['event']:<11} {event['lang']} {event['posts']:>5} posts "
                   f"{event['shape']:<12} {delay}")  # fmt: skip
    for title in report["not_about_events"]:
        click.echo(f"✗ not a planted event: {title}")
    for story, faults in report["faults"].items():
        click.echo(f"✗ {story}: {'; '.join(faults)}")


