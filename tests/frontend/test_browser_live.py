"""Live updates in a real browser over a real websocket: the annotator's queue line and re-rank notice, and the
lead's active-learning card (Retrain now, job progress, model versions, learning settings).

pytest-django's live server speaks WSGI only, so these tests run uvicorn (the ASGI server `make demo` uses) in a
process of its own on the test database. Events are sent by this process, as by the orchestrator: with Redis the
channel layer wakes the server's sockets; with the embedded defaults (no Redis) they read the events the other
process wrote.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from annotation.models import Assignment, AssignmentState, ModelStatus, ModelVersion
from annotation.services import project_update
from annotation.services.jobs import job_claim, job_fail, job_finish, job_report
from annotation.services.learning import candidate_judge
from annotation.services.orchestrator import orchestrator_tick
from annotation.services.queue import queue_rerank
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.conftest import CONTEXT, settled_context
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw-for-tests"  # what tests.frontend.test_browser_import.log_in types

# As the Makefile's demo target runs it.
UVICORN_FLAGS = ("--ws", "websockets-sansio", "--lifespan", "off")


@dataclass(frozen=True)
class AsgiServer:
    url: str
    media_root: Path
    channel_prefix: str
    pid: int = 0


def _database_url() -> str:
    """Return DATABASE_URL pointed at the database this test runs in (pytest-django's test_… copy)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not serve {url} within {timeout} s:\n{log.read_text()[-4000:]}")


def _serve(tmp_path_factory, *, redis: bool):
    """Run uvicorn as `make demo` does, on the test database with the base settings, static files collected as in
    production; with `redis`, on the Redis channel layer, else with the embedded defaults of `make demo` (no Redis)."""
    if connection.vendor != "postgresql":
        pytest.skip("the ASGI server process shares the test database: set DATABASE_URL to PostgreSQL")
    if redis and not os.environ.get("REDIS_URL"):
        pytest.skip("this server runs on the Redis channel layer: set REDIS_URL")
    folder = tmp_path_factory.mktemp("asgi")
    server = AsgiServer(
        url=f"http://127.0.0.1:{_free_port()}",
        media_root=folder / "media",
        channel_prefix=f"lumen-test-{secrets.token_hex(4)}",  # keeps other test runs' events out
    )
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "LUMEN_MEDIA_ROOT": str(server.media_root),
        "LUMEN_STATIC_ROOT": str(folder / "static"),
        "LUMEN_CHANNEL_PREFIX": server.channel_prefix,
        "LUMEN_LOG_LEVEL": "WARNING",
    }
    if redis:
        # Plain REDIS_URL: the settings must keep idle websockets alive (one socket per page is asserted below).
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    else:
        env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env, check=True)
    log = folder / "uvicorn.log"
    port = urlsplit(server.url).port
    uvicorn = Path(sys.executable).with_name("uvicorn")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(uvicorn), *UVICORN_FLAGS, "--host", "127.0.0.1", "--port", str(port), "webapp.asgi:application"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(process, f"{server.url}/login/", log)
        yield dataclasses.replace(server, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def asgi_process(django_db_setup, tmp_path_factory):
    yield from _serve(tmp_path_factory, redis=True)


@pytest.fixture(scope="module")
def asgi_embedded(django_db_setup, tmp_path_factory):
    yield from _serve(tmp_path_factory, redis=False)


@pytest.fixture
def live_asgi(asgi_process, settings):
    """The ASGI server, with this process's media and channel layer pointed where the server looks."""
    settings.MEDIA_ROOT = str(asgi_process.media_root)
    layer = settings.CHANNEL_LAYERS["default"]
    config = {**layer["CONFIG"], "prefix": asgi_process.channel_prefix}
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": config}}
    return asgi_process


def _runs(project, first_seed: int, count: int) -> None:
    run(
        project,
        *[
            (f"live{first_seed + i}.dcm", samples.xa_bytes(seed=first_seed + i, frames=4, size=48))
            for i in range(count)
        ],
    )


def _log_in(page, server: AsgiServer, user) -> None:
    # The server runs the base settings, whose hashers do not read the test settings' fast MD5 hashes.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    log_in(page, server, user.username)
    page.wait_for_selector(".topbar .who")  # the login has gone through before the test navigates on


def _leased(user, count: int, timeout: float = 15.0) -> None:
    """Wait until the user holds `count` open leases (the workspace leases the following item ahead)."""
    deadline = time.monotonic() + timeout
    while Assignment.objects.filter(annotator=user, state=AssignmentState.LEASED).count() != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{user.username} does not hold {count} leases")
        time.sleep(0.1)


def _text_is(page, selector: str, text: str, timeout: float = 15000) -> None:
    """Wait until the element's text is `text`; on a timeout, say what it was instead."""
    try:
        page.wait_for_function(
            "([selector, text]) => { const node = document.querySelector(selector);"
            " return node !== null && node.textContent.trim() === text; }",
            arg=[selector, text],
            timeout=timeout,
        )
    except PlaywrightTimeout:
        shown = page.locator(selector).all_inner_texts()
        raise AssertionError(f"{selector} shows {shown}, not {text!r}") from None


def test_annotator_sees_the_queue_size_and_a_rerank_live(page, live_asgi, annotator, vessel_project, screenshot):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_project.refresh_from_db()  # the import reads the overlap rate from this object
    _runs(vessel_project, 60, 3)
    _log_in(page, live_asgi, annotator)
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(f"{live_asgi.url}/projects/{vessel_project.slug}/label/")
    page.wait_for_selector("#workspace[data-state=ready][data-live=open]")
    _leased(annotator, 2)  # the item on screen and the one fetched ahead
    assert page.locator("#progress [data-count=to_do]").inner_text() == "3"
    assert page.locator("#live-notice").is_hidden()
    item_id = page.locator("#workspace").get_attribute("data-item-id")
    page.evaluate("window.notReloaded = true")

    _runs(vessel_project, 70, 2)  # new items: the annotator's to-do grows, the queue announces it on the next tick
    queue_rerank(project=vessel_project)
    _text_is(page, "#live-notice-text", "The queue was re-ordered (cold start).")
    _text_is(page, "#progress [data-count=to_do]", "5")

    newest = ModelVersion.objects.create(
        project=vessel_project, number=2, family="metadata_mlp", status=ModelStatus.REJECTED
    )
    queue_rerank(project=vessel_project, version=newest)  # before a first champion: it ranks, nothing else
    _text_is(page, "#live-notice-text", "The newest model (v2, not promoted yet) re-ranked the queue by entropy.")

    champion = ModelVersion.objects.create(
        project=vessel_project, number=3, family="metadata_mlp", status=ModelStatus.CHAMPION
    )
    queue_rerank(project=vessel_project, version=champion)
    _text_is(page, "#live-notice-text", "A new model (v3) re-ranked the queue by entropy.")
    assert orchestrator_tick().announced == {vessel_project.slug: 3}  # five open, two leased to this annotator
    _text_is(page, "#queue-size", "3 items waiting in the queue")
    screenshot("workspace-live")

    page.click("#live-notice-close")
    assert page.locator("#live-notice").is_hidden()
    # Nothing of this reloaded the page or took the annotator off their item.
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#workspace").get_attribute("data-item-id") == item_id
    assert page.locator("#workspace").get_attribute("data-state") == "ready"
    assert len(sockets) == 1, "the websocket was dropped and reopened"


def test_lead_retrains_and_follows_the_job_and_the_new_model_live(page, live_asgi, lead, vessel_project, screenshot):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_project.refresh_from_db()  # the import reads the overlap rate from this object
    _runs(vessel_project, 80, 2)
    _log_in(page, live_asgi, lead)
    page.goto(f"{live_asgi.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#learning[data-live=open]")
    _text_is(page, "#queue-summary [data-fact=open]", "2")
    _text_is(page, "#queue-summary [data-fact=unranked_items]", "2")
    assert page.locator("#queue-summary [data-fact=ranked_by]").inner_text() == "not ranked yet"
    assert page.locator("#jobs-empty").is_visible() and page.locator("#versions-empty").is_visible()

    page.click("#retrain")
    page.wait_for_selector("#jobs li.job[data-status=queued]")
    job_id = page.locator("#jobs li.job").first.get_attribute("data-job")
    _text_is(page, "#retrain-status", f"Training job #{job_id} queued.")
    page.click("#retrain")  # a second round while one is queued is refused with the server's reason
    page.wait_for_function("document.getElementById('retrain-status').textContent.includes('already queued')")
    assert page.locator("#jobs li.job").count() == 1

    job = job_claim()
    assert str(job.pk) == job_id
    row = f"#jobs li.job[data-job='{job_id}']"
    page.wait_for_selector(f"{row}[data-status=running]")
    job_report(job=job, reports=[{"phase": "training", "epoch": 2, "loss": 0.5, "done": 2, "total": 4}])
    page.wait_for_selector(f"{row} [role=progressbar][aria-valuenow='50']")
    detail = page.locator(f"{row} .job-detail").inner_text()
    assert "epoch 2 of 4" in detail and "loss 0.5000" in detail, detail
    assert page.locator(f"{row} .percent").inner_text() == "50 %"
    screenshot("learning-card-training")

    version = ModelVersion.objects.create(
        project=vessel_project,
        number=1,
        family="metadata_mlp",
        status=ModelStatus.TRAINED,
        metrics={
            "test": {"macro_f1": 0.712, "macro_f1_ci": [0.551, 0.853], "n": 12, "ece": 0.0814, "ece_ci": [0.031, 0.2]},
            "calibration": {"fitted": True, "n": 9, "temperature": 1.3456},
            "baseline_test": {"macro_f1": 0.4, "n": 12, "name": "majority class"},
            "comparison": {
                "baseline": {
                    "n": 12,
                    "candidate": 0.712,
                    "other": 0.4,
                    "difference": 0.312,
                    "interval": [0.1, 0.5],
                    "confidence": 0.9,
                },
            },
        },
    )
    candidate_judge(version=version, primary="macro_f1", champion=None)
    page.wait_for_selector("#model-versions tr.version[data-number='1']")
    cells = page.locator("#model-versions tr.version[data-number='1'] td").all_inner_texts()
    rule = (
        "first model: test macro_f1 0.712 beats the majority class (0.400) on the same 12 test items "
        "(difference +0.312, 90 % CI [+0.100, +0.500], paired bootstrap)"
    )
    calibration = "test ECE 0.081 [0.031–0.200]; temperature 1.35 fitted on 9 validation items"
    assert cells == ["v1", "metadata_mlp", "candidate", "0.712 [0.551–0.853] (n=12)", calibration, rule]
    job_finish(job=job, result={"model_version": 1}, model_version=version)
    page.wait_for_selector(f"{row}[data-status=succeeded] [role=progressbar][aria-valuenow='100']")
    assert "model v1" in page.locator(f"{row} .job-head").inner_text()

    page.click("#retrain")
    page.wait_for_selector("#jobs li.job[data-status=queued]")
    second = job_claim()
    page.wait_for_selector(f"#jobs li.job[data-job='{second.pk}'][data-status=running]")
    job_fail(job=second, error="training failed: CUDA out of memory")
    failed = f"#jobs li.job[data-job='{second.pk}'][data-status=failed]"
    page.wait_for_selector(failed)
    assert page.locator(f"{failed} .job-error").inner_text() == "training failed: CUDA out of memory"
    screenshot("learning-card")

    page.reload()  # the same list comes from the jobs and model-versions API
    page.wait_for_selector(f"{row}[data-status=succeeded]")
    statuses = page.locator("#jobs li.job").evaluate_all("rows => rows.map(r => [r.dataset.job, r.dataset.status])")
    assert statuses == [[str(second.pk), "failed"], [job_id, "succeeded"]]
    assert "model v1 · retrain now" in page.locator(f"{row} .job-head").inner_text()
    assert page.locator("#model-versions tr.version").count() == 1

    # Before a first champion, a rejected newest model ranks the queue: the card says what ranked it.
    rejected = ModelVersion.objects.create(
        project=vessel_project, number=2, family="metadata_mlp", status=ModelStatus.REJECTED
    )
    queue_rerank(project=vessel_project, version=rejected)
    _text_is(page, "#queue-summary [data-fact=ranked_by]", "model v2 (newest model, not promoted: it only ranks)")


@pytest.mark.parametrize(
    ("project_fixture", "accepted", "refused", "reason"),
    [
        ("vessel_project", "least_confidence", "bald", "bald needs Monte Carlo dropout"),
        ("spect_project", "random", "margin", "margin needs 'margin' scores"),
    ],
)
def test_lead_saves_learning_settings_and_reads_a_refusal(
    page, live_asgi, lead, request, project_fixture, accepted, refused, reason, screenshot
):
    project = request.getfixturevalue(project_fixture)
    _log_in(page, live_asgi, lead)
    page.goto(f"{live_asgi.url}/projects/{project.slug}/")
    page.wait_for_selector("#learning[data-live=open]")
    form = "#learning-form"
    page.select_option(f"{form} select[name=acquisition_strategy]", accepted)
    page.fill(f"{form} input[name=retrain_every_n_labels]", "20")
    page.fill(f"{form} input[name=retrain_every_minutes]", "15")
    page.fill(f"{form} input[name=gold_rate]", "0.05")
    page.fill(f"{form} input[name=pseudo_label_threshold]", "0.9")
    page.fill(f"{form} input[name=queue_batch_size]", "64")
    page.fill(f"{form} input[name=test_handout_rate]", "0.3")
    page.fill(f"{form} input[name=promotion_min_test_items]", "25")
    assert page.input_value(f"{form} input[name=promotion_refresh_growth]") == "0.05"  # the default, shown
    page.fill(f"{form} input[name=promotion_refresh_growth]", "0.25")
    classes = page.locator(f"{form} input[name=model_class]")
    if project.task_type == "vessel_type":  # the lead drops "neither": the model learns LCA and RCA only
        assert classes.count() == 3
        page.uncheck(f"{form} input[name=model_class][value=neither]")
    else:
        assert classes.count() == 0
    page.click(f"{form} button[type=submit]")
    page.wait_for_function("document.getElementById('learning-status').textContent.startsWith('Saved')")
    project.refresh_from_db()
    saved = project.settings
    assert (saved["test_handout_rate"], saved["promotion_min_test_items"]) == (0.3, 25)
    assert saved["promotion_refresh_growth"] == 0.25
    if project.task_type == "vessel_type":
        assert saved["training_hparams"] == {"classes": "LCA,RCA"}
    assert (saved["acquisition_strategy"], saved["retrain_every_n_labels"], saved["retrain_every_minutes"]) == (
        accepted,
        20,
        15,
    )
    assert (saved["gold_rate"], saved["pseudo_label_threshold"], saved["queue_batch_size"]) == (0.05, 0.9, 64)

    page.fill(f"{form} input[name=pseudo_label_threshold]", "")  # empty turns pseudo-labels off
    page.fill(f"{form} input[name=promotion_refresh_growth]", "")  # empty: only a win beyond noise promotes
    page.click(f"{form} button[type=submit]")
    page.wait_for_function("document.getElementById('learning-status').textContent.startsWith('Saved')")
    project.refresh_from_db()
    assert project.settings["pseudo_label_threshold"] is None
    assert project.settings["promotion_refresh_growth"] is None

    page.select_option(f"{form} select[name=acquisition_strategy]", refused)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#learning-error:not([hidden])")
    error = page.locator("#learning-error")
    assert error.get_attribute("data-field") == "acquisition_strategy"
    assert error.inner_text().startswith("acquisition_strategy: ") and reason in error.inner_text()
    assert page.locator(f"{form} select[name=acquisition_strategy]").get_attribute("aria-invalid") == "true"
    assert page.locator("#learning-status").inner_text() == "Not saved."
    screenshot(f"learning-settings-refused-{project.task_type}")
    project.refresh_from_db()
    assert project.settings["acquisition_strategy"] == accepted


def test_without_redis_a_label_and_a_retrain_reach_another_page_live(
    browser, page, asgi_embedded, settings, lead, annotator, vessel_project, screenshot
):
    """The embedded defaults of `make demo`: the server has no Redis, events come from another process."""
    settings.MEDIA_ROOT = str(asgi_embedded.media_root)
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_project.refresh_from_db()
    _runs(vessel_project, 90, 4)
    _log_in(page, asgi_embedded, lead)
    page.goto(f"{asgi_embedded.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#learning[data-live=open]")
    orchestrator_tick()  # the queue's first announcement
    _text_is(page, "#queue-summary [data-fact=open]", "4")
    page.evaluate("window.notReloaded = true")

    with settled_context(browser, **CONTEXT) as other:
        workspace = other.new_page()
        _log_in(workspace, asgi_embedded, annotator)
        workspace.goto(f"{asgi_embedded.url}/projects/{vessel_project.slug}/label/")
        workspace.wait_for_selector("#workspace[data-state=ready][data-live=open]")
        _leased(annotator, 2)  # the item on screen and the one fetched ahead
        workspace.keyboard.press("1")
        workspace.keyboard.press("Enter")  # a label in one browser context …
        workspace.wait_for_function(
            "document.getElementById('progress').querySelector('[data-count=done]').textContent.trim() === '1'"
        )
        _leased(annotator, 2)  # the next item on screen, and the one after it fetched ahead
    orchestrator_tick()  # … announced by the orchestrator, as it does every few seconds
    # … reaches the lead's page without a reload: 4 runs, one labelled, two leased to the annotator.
    _text_is(page, "#queue-summary [data-fact=open]", "1")

    page.click("#retrain")
    page.wait_for_selector("#jobs li.job[data-status=queued]")
    job = job_claim()
    row = f"#jobs li.job[data-job='{job.pk}']"
    page.wait_for_selector(f"{row}[data-status=running]")
    job_report(job=job, reports=[{"phase": "training", "epoch": 1, "loss": 0.6, "done": 1, "total": 4}])
    page.wait_for_selector(f"{row} [role=progressbar][aria-valuenow='25']")
    screenshot("learning-card-without-redis")
    assert page.evaluate("window.notReloaded") is True
    job_fail(job=job, error="stopped by the test")
    page.wait_for_selector(f"{row}[data-status=failed]")
