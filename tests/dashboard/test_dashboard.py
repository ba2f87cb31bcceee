"""The dashboard's pages over a store of real records: HTML, JSON, links, 404s, escaping."""

from __future__ import annotations

import re
from html import unescape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from conftest import Recorded
    from fastapi.testclient import TestClient

MARKUP = "<script>alert(1)<b>"  # as the conftest names an experiment and labels a version


def _json(client: TestClient, path: str) -> Any:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    return answer.json()


def _html(client: TestClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "<script" not in answer.text.lower(), "unescaped markup or a script"
    return answer.text


def test_overview_shows_models_passes_datasets_and_pipelines(
    client: TestClient, recorded: Recorded
) -> None:
    data = _json(client, "/api/overview")
    assert data == _json(client, "/?format=json")
    (churn,) = data["models"]
    assert churn["name"] == "churn" and churn["versions"] == 2
    assert set(churn["aliases"]) == {"champion", "candidate", "baseline"}
    assert churn["newest"]["version"] == 2
    (formalized,) = data["passes"]
    assert formalized["execution_id"] == recorded.pass_id
    assert formalized["dataset_artifact_id"] == recorded.dataset_id
    assert (formalized["decision"], formalized["candidate"]) == ("RETUNE", "churn@2")
    assert formalized["reasons"] and "log_loss" in formalized["reasons"][0]
    assert [d["artifact_id"] for d in data["datasets"]] == [recorded.dataset_id]
    assert data["policy_decisions"][0]["reasons"] == ["nothing tuned yet"]
    assert data["pipeline_versions"][0]["pipeline"] == "training"
    assert data["experiments"] == 2

    page = _html(client, "/")
    assert '<a href="/models/churn">churn</a>' in page
    for shown in ("champion=", "candidate=2", "baseline=1", "RETUNE", "churn@2", "training"):
        assert shown in page
    assert f'href="/lineage/{recorded.dataset_id}"' in page
    assert unescape(formalized["reasons"][0]) in unescape(page)


def test_model_page_shows_versions_aliases_decisions_and_evaluations(
    client: TestClient, recorded: Recorded
) -> None:
    data = _json(client, "/api/models/churn")
    assert data == _json(client, "/models/churn?format=json")
    assert [v["version"] for v in data["versions"]] == [2, 1]
    assert data["versions"][1]["labels"] == {"note": MARKUP}
    assert data["aliases"]["baseline"] == 1 and data["aliases"]["candidate"] == 2
    (decision,) = data["decisions"]
    assert decision["artifact_id"] == recorded.decision_id
    assert (decision["candidate_version"], decision["champion_version"]) == (2, 1)
    assert decision["objective"] == "log_loss" and decision["reasons"]
    assert isinstance(decision["candidate_value"], float)
    assert data["aliases"]["champion"] == (2 if decision["promote"] else 1)
    assert sorted(e["version"] for e in data["evaluations"]) == [1, 2]
    assert all("log_loss" in e["metrics"] for e in data["evaluations"])
    assert {m["alias"] for m in data["alias_moves"]} >= {"champion", "candidate", "baseline"}

    page = _html(client, "/models/churn")
    assert "&lt;script&gt;alert(1)&lt;b&gt;" in page  # the label, escaped
    assert f'href="/lineage/{recorded.decision_id}"' in page
    assert f'href="/lineage/{recorded.evaluation_id}"' in page
    assert unescape(decision["reasons"][0]) in unescape(page)


def _types(nodes: list[dict[str, Any]]) -> set[str]:
    """The execution and artifact types anywhere in a lineage tree."""
    found: set[str] = set()
    for node in nodes:
        found.add(node["execution"]["type"])
        for child in node["artifacts"]:
            found.add(child["artifact"]["type"])
            found |= _types(child["next"])
    return found


def test_lineage_page_shows_upstream_and_downstream(client: TestClient, recorded: Recorded) -> None:
    data = _json(client, f"/api/lineage/{recorded.dataset_id}")
    assert data["artifact"]["id"] == recorded.dataset_id
    assert {"PrepareDataset", "DataSource"} <= _types(data["upstream"])
    downstream = _types(data["downstream"])
    assert {"Evaluate", "Evaluation", "Decide", "PolicyDecision", "FormalizePass"} <= downstream
    assert {"Gate", "GateDecision"} <= downstream  # two hops on, through the evaluations
    assert recorded.evaluation_id in {a["id"] for a in data["artifacts"]}

    page = _html(client, f"/lineage/{recorded.dataset_id}")
    assert "Upstream (made from)" in page and "Downstream (used by)" in page
    assert f'href="/lineage/{recorded.evaluation_id}"' in page
    model = _json(client, f"/api/lineage/{recorded.versions[1]}?depth=2")
    assert _types(model["upstream"]) == {"RegisterModel"}
    assert {"Evaluate", "Evaluation", "Gate", "GateDecision"} <= _types(model["downstream"])


def test_experiment_pages_show_runs_and_escape_names(client: TestClient) -> None:
    listed = _json(client, "/api/experiments")["experiments"]
    assert sorted(e["name"] for e in listed) == sorted(["churn-exp", MARKUP])
    assert {e["runs"] for e in listed} == {1}
    page = _html(client, "/experiments")
    assert "&lt;script&gt;alert(1)&lt;b&gt;" in page
    assert f'href="/experiments/{quote(MARKUP, safe="")}"' in page

    data = _json(client, f"/api/experiments/{quote(MARKUP, safe='')}")
    assert data["name"] == MARKUP
    (run,) = data["runs"]
    assert run["run"] == "lr-0.1" and run["state"] == "COMPLETE"
    assert run["params"] == {"learning_rate": 0.1, "optimizer": "adam"}
    assert run["metrics"] == {"val_log_loss": 0.42}
    page = _html(client, f"/experiments/{quote(MARKUP, safe='')}")
    assert "learning_rate=0.1, optimizer=adam" in page and "val_log_loss=0.42" in page


def test_every_link_resolves(client: TestClient) -> None:
    """Crawl from the overview: every page linked to (lineage included) answers 200."""
    seen: set[str] = set()
    queue = ["/"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for href in re.findall(r'href="([^"]+)"', _html(client, path)):
            target = unescape(href)
            if target.startswith("/api/") or "format=json" in target:
                assert client.get(target).status_code == 200, target
            elif target not in seen:
                queue.append(target)
    assert {"/", "/experiments", "/models/churn"} <= seen
    assert sum(p.startswith("/lineage/") for p in seen) >= 5


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/models/nope", "no registered model 'nope'"),
        ("/lineage/999999", "no artifact with id 999999"),
        ("/lineage/abc", "no artifact with id 'abc'"),
        ("/experiments/nope", "no experiment 'nope'"),
    ],
)
def test_unknown_names_and_ids_are_404_with_one_line(
    client: TestClient, path: str, message: str
) -> None:
    answer = client.get(f"/api{path}")
    assert answer.status_code == 404
    assert answer.json() == {"detail": answer.json()["detail"]}
    assert message in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    page = client.get(path)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert message.replace("'", "&#x27;") in page.text


def test_markup_in_an_unknown_name_is_escaped(client: TestClient) -> None:
    answer = client.get(f"/models/{quote('<script>x', safe='')}")
    assert answer.status_code == 404
    assert "<script>" not in answer.text and "&lt;script&gt;x" in answer.text


def test_bad_query_values_are_refused(client: TestClient, recorded: Recorded) -> None:
    answer = client.get("/?format=xml")
    assert answer.status_code == 400 and "format must be html or json" in answer.text
    assert client.get(f"/api/lineage/{recorded.dataset_id}?depth=-1").status_code == 422
