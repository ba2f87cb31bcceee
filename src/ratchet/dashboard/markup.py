"""The dashboard's HTML: one plain page per view, every value escaped.

Owns the page frame (title, navigation, a small inline stylesheet, the link to
the same page as JSON), tables and nested lists, how values read (numbers to six
significant digits, times, mappings) and the links between pages. There is no
JavaScript and nothing is fetched: a page is complete as served. What a page
holds is `view`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

Row = Mapping[str, Any]
Cell = Callable[[Row], str]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 80rem; color: #222; }
nav a { margin-right: 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }
td { vertical-align: top; }
th { background: #f4f4f4; }
.none { color: #888; } .yes { color: #060; font-weight: 600; } .no { color: #a00; }
ul.tree { list-style: none; padding-left: 1.2rem; border-left: 1px dotted #bbb; }
code { font-size: 12px; }
"""


def text(value: object) -> str:
    """A value as escaped text: floats to 6 significant digits, mappings as k=v, lists by ';'."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return f'<span class="{"yes" if value else "no"}">{"yes" if value else "no"}</span>'
    if isinstance(value, float):
        return escape(f"{value:.6g}")
    if isinstance(value, Mapping):
        return escape(", ".join(f"{k}={_plain(v)}" for k, v in value.items()))
    if isinstance(value, list | tuple):
        return "<br>".join(escape(_plain(v)) for v in value)
    return escape(str(value))


def _plain(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def link(href: str, label: object) -> str:
    return f'<a href="{escape(href, quote=True)}">{text(label)}</a>'


def model_href(name: object) -> str:
    return f"/models/{quote(str(name), safe='')}"


def lineage_href(artifact_id: object) -> str:
    return f"/lineage/{quote(str(artifact_id), safe='')}"


def experiment_href(name: object) -> str:
    return f"/experiments/{quote(str(name), safe='')}"


def field(key: str) -> Cell:
    return lambda row: text(row.get(key))


def artifact_link(key: str, label: str | None = None) -> Cell:
    """A link to the lineage of the artifact whose id is `row[key]`, labelled by `row[label]`."""

    def cell(row: Row) -> str:
        found = row.get(key)
        if found is None:
            return text(row.get(label)) if label else ""
        return link(lineage_href(found), row.get(label) if label else found)

    return cell


def table(rows: Sequence[Row], columns: Sequence[tuple[str, Cell]]) -> str:
    if not rows:
        return '<p class="none">(none)</p>'
    head = "".join(f"<th>{escape(title)}</th>" for title, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row)}</td>" for _, cell in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, json_href: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · ratchet</title><style>{STYLE}</style></head><body>"
        '<nav><a href="/">overview</a><a href="/experiments">experiments</a>'
        f"{link(json_href, 'this page as JSON')}</nav>"
        f"<h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def overview(data: Row) -> str:
    models = table(
        data["models"],
        [
            ("model", lambda r: link(model_href(r["name"]), r["name"])),
            ("aliases", lambda r: text(r["aliases"])),
            ("versions", field("versions")),
            (
                "newest",
                lambda r: (
                    ""
                    if r["newest"] is None
                    else link(
                        lineage_href(r["newest"]["artifact_id"]),
                        f"version {r['newest']['version']}",
                    )
                ),
            ),
            ("created", lambda r: text(r["newest"] and r["newest"]["created"])),
        ],
    )
    passes = table(
        data["passes"],
        [
            ("time", field("time")),
            ("model", lambda r: link(model_href(r["model"]), r["model"]) if r["model"] else ""),
            ("dataset version", artifact_link("dataset_artifact_id", "dataset")),
            ("decision", field("decision")),
            ("candidate", field("candidate")),
            ("promoted", field("promoted")),
            ("gate reasons", field("reasons")),
        ],
    )
    decisions = table(
        data["policy_decisions"],
        [
            ("time", artifact_link("artifact_id", "time")),
            ("action", field("action")),
            ("dataset version", lambda r: text(str(r["dataset_version"] or "")[:12])),
            ("reasons", field("reasons")),
        ],
    )
    datasets = table(
        data["datasets"],
        [
            ("dataset", field("name")),
            ("version", artifact_link("artifact_id", "version")),
            ("rows", field("rows")),
            ("label", field("label")),
            ("created", field("created")),
        ],
    )
    hyperparameters = table(
        data["hyperparameters"],
        [
            ("study", artifact_link("artifact_id", "study")),
            ("metric", field("metric")),
            ("value", field("value")),
            ("dataset version", field("dataset_version")),
            ("created", field("created")),
        ],
    )
    pipeline_versions = table(
        data["pipeline_versions"],
        [
            ("pipeline", field("pipeline")),
            ("version", artifact_link("artifact_id", "version")),
            ("git commit", lambda r: text(str(r["git_commit"] or "")[:12])),
            ("dirty", field("dirty")),
            ("created", field("created")),
        ],
    )
    pipeline_runs = table(
        data["pipeline_runs"],
        [(title, field(key)) for title, key in
         (("run", "run"), ("pipeline", "pipeline"), ("version", "version"),
          ("state", "state"), ("started", "started"))],
    )  # fmt: skip
    experiments = link("/experiments", f"{data['experiments']} tracking experiments")
    body = (
        f"<h2>Registered models</h2>{models}"
        f"<h2>Formalization passes</h2>{passes}"
        f"<h2>Policy decisions</h2>{decisions}"
        f"<h2>Dataset versions</h2>{datasets}"
        f"<h2>Hyperparameters</h2>{hyperparameters}"
        f"<h2>Pipeline versions</h2>{pipeline_versions}"
        f"<h2>Pipeline runs</h2>{pipeline_runs}"
        f"<h2>Experiments</h2><p>{experiments}</p>"
    )
    return page("ratchet dashboard", body, json_href="/api/overview")


def model(data: Row) -> str:
    name = data["name"]
    versions = table(
        data["versions"],
        [
            ("version", artifact_link("artifact_id", "version")),
            ("aliases", field("aliases")),
            ("framework", field("framework")),
            ("labels", field("labels")),
            ("created", field("created")),
        ],
    )
    moves = table(
        data["alias_moves"],
        [(title, field(key)) for title, key in
         (("time", "time"), ("alias", "alias"), ("from", "from_version"),
          ("to", "to_version"), ("reason", "reason"))],
    )  # fmt: skip
    decisions = table(
        data["decisions"],
        [
            ("time", artifact_link("artifact_id", "time")),
            ("candidate", field("candidate_version")),
            ("champion", field("champion_version")),
            ("objective", field("objective")),
            ("candidate value", field("candidate_value")),
            ("champion value", field("champion_value")),
            ("improvement", field("improvement")),
            ("promote", field("promote")),
            ("reasons", field("reasons")),
        ],
    )
    evaluations = table(
        data["evaluations"],
        [
            ("evaluation", artifact_link("artifact_id", "created")),
            ("version", field("version")),
            ("rows", field("rows")),
            ("dataset version", field("dataset_version")),
            ("overall metrics", field("metrics")),
        ],
    )
    body = (
        f"<p>aliases: {text(data['aliases']) or '<span class=none>(none)</span>'}</p>"
        f"<h2>Versions</h2>{versions}"
        f"<h2>Gate decisions</h2>{decisions}"
        f"<h2>Evaluations</h2>{evaluations}"
        f"<h2>Alias moves</h2>{moves}"
    )
    return page(f"model {name}", body, json_href=f"/api{model_href(name)}")


def _artifact_label(a: Row) -> str:
    where = f"sha256:{a['sha256'][:12]}" if a.get("sha256") else a.get("uri") or ""
    label = link(lineage_href(a["id"]), f"artifact {a['id']}")
    return f"{label} {text(a['type'])} {text(a.get('name'))} <code>{escape(where)}</code>"


def _tree(nodes: Sequence[Row]) -> str:
    if not nodes:
        return ""
    items = []
    for node in nodes:
        e = node["execution"]
        artifacts = "".join(
            f"<li>{text(a['role'])}: {_artifact_label(a['artifact'])}{_tree(a['next'])}</li>"
            for a in node["artifacts"]
        )
        items.append(
            f"<li>execution {text(e['id'])} {text(e['type'])} {text(e['name'])} "
            f"({text(e['state'])}) as {text(node['role'])}"
            f'<ul class="tree">{artifacts}</ul></li>'
        )
    return f'<ul class="tree">{"".join(items)}</ul>'


def lineage(data: Row) -> str:
    root = data["artifact"]
    body = (
        f"<p>{_artifact_label(root)}; created {text(root['created'])}</p>"
        f"<h2>Upstream (made from)</h2>"
        f"{_tree(data['upstream']) or '<p class=none>(none)</p>'}"
        f"<h2>Downstream (used by)</h2>"
        f"{_tree(data['downstream']) or '<p class=none>(none)</p>'}"
    )
    return page(f"lineage of artifact {root['id']}", body, json_href=f"/api/lineage/{root['id']}")


def experiments(data: Row) -> str:
    rows = table(
        data["experiments"],
        [
            ("experiment", lambda r: link(experiment_href(r["name"]), r["name"])),
            ("runs", field("runs")),
            ("created", field("created")),
            ("description", field("description")),
        ],
    )
    return page("experiments", rows, json_href="/api/experiments")


def experiment(data: Row) -> str:
    runs = table(
        data["runs"],
        [
            ("run", field("run")),
            ("state", field("state")),
            ("started", field("start_time")),
            ("ended", field("end_time")),
            ("params", field("params")),
            ("metrics", field("metrics")),
            (
                "artifacts",
                lambda r: "<br>".join(
                    link(lineage_href(a["id"]), f"{a['type']} {a['id']}") for a in r["artifacts"]
                ),
            ),
        ],
    )
    body = f"<p>{text(data['description'])}</p><h2>Runs</h2>{runs}"
    return page(
        f"experiment {data['name']}", body, json_href=f"/api{experiment_href(data['name'])}"
    )
