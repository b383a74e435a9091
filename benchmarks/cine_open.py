"""Opening a cine run in Chromium: time to the first frame and to all frames, and the bytes sent, against the DICOM.

    python -m benchmarks.cine_open [--frames 100] [--size 512] [--repeats 5] [--save]

One generated XA run is imported with the real import service and served on a free loopback port by the production
server as `deploy/README.md` runs it (gunicorn with `deploy/gunicorn.conf.py`: several uvicorn worker processes,
`webapp.settings.production`) when DATABASE_URL points at PostgreSQL; on SQLite (an in-memory test database no
other process can see) by daphne in a thread of this process. Each repetition opens a fresh browser context (cold
HTTP cache, logged in through the login form once) and measures from navigation start:

- the baseline: the page fetches the run's de-identified DICOM file whole, over the same server (what a viewer
  that reads DICOM in the browser must transfer before it can show anything);
- the same frames without the player: fetched one after another and decoded, as a naive loop would;
- the workspace with the cine tool, as an annotator opens it (`/projects/<slug>/label/`, the queue hands out the
  run), four ways: in the context's new tab at once (the navigation shares the CPU with the start of the tab's
  renderer process), then the next run in the same tab (page cached), in another fresh context whose tab first
  shows a blank page of the site's origin (the browser has a renderer for the site, started and idle; nothing of
  the workspace cached), and in a fresh context whose tab shows the home page, from which the annotator follows
  the project's Start link (the site's styles and the home page's scripts cached, nothing of the workspace). Both
  links are followed one second after their page loaded, as a person reads a page before following its link. The
  page arrives with the first item's `next` answer embedded (leased as it was rendered), its styles written into
  it, and frame 0 as an <img> in the tool's place, its bytes in the page (a data: URL; a larger frame is preloaded
  from the head instead) and on screen when painted (its Element Timing entry); the tool then takes that image
  over, draws it on its canvas and reads frames 1… in one packed response (`frames/pack/`, each frame decoded as
  its bytes arrive), read from the tool's performance marks ("cine-first-frame", "cine-all-frames"). The first
  frame counts from whichever showed first.

Bytes are the run's frame responses' Resource Timing `encodedBodySize` (the body on the wire), plus frame 0's bytes
where they came in the page (the next run's frame 0, which the workspace warms ahead, is not counted). After loading,
one lap of playback at 1× checks that every frame is shown at the run's frame rate. Medians over the repetitions, after
one warm-up round that is not counted.

The database is a throw-away test database (`benchmarks.common.django_test_database`); the production server gets
its name, this run's media folder and random keys; two benchmark-only routes are added (`benchmarks.cine_asgi`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import daphne.server  # installs Twisted's asyncio reactor: import it before anything else touches Twisted
import numpy as np

from benchmarks.cine_asgi import bench_routes
from benchmarks.common import django_test_database, machine_line, save, table

PASSWORD = "bench-password"

WORKSPACE_OPENINGS = ("workspace", "workspace_warm", "workspace_linked", "workspace_start")

# Runs in a blank page of the server's origin: fetch a URL whole and return when it arrived (ms since navigation).
FETCH_DICOM_JS = """
async (url) => {
  const body = await (await fetch(url, {credentials: "same-origin"})).arrayBuffer();
  return {first: null, all: performance.now(), bytes: body.byteLength};
}
"""

# The frames one after another, each decoded before the next is asked for.
SEQUENTIAL_FRAMES_JS = """
async ({template, frames}) => {
  let first = null;
  for (let n = 0; n < frames; n += 1) {
    const blob = await (await fetch(template.replace("{n}", n), {credentials: "same-origin"})).blob();
    (await createImageBitmap(blob)).close();
    if (first === null) first = performance.now();
  }
  return {first, all: performance.now()};
}
"""

FRAME_BYTES_JS = """
() => {
  // This run's frames (the workspace also warms the next run's frame 0 ahead: not this opening's cost).
  const mine = window.lumenCine ? `/items/${window.lumenCine.itemId}/frames/` : "/frames/";
  const frames = performance.getEntriesByType("resource").filter((e) => e.name.includes(mine));
  // Frame 0 of the workspace's run may have come in the page: the player counted its bytes (lumenCine.inPage).
  const inPage = (window.lumenCine && window.lumenCine.inPage) || 0;
  return {requests: frames.length, bytes: inPage + frames.reduce((sum, e) => sum + e.encodedBodySize, 0)};
}
"""

WORKSPACE_MARKS_JS = """
async () => {
  // When the page's <img> of frame 0 was painted (Element Timing; the entries are buffered for the observer).
  const painted = await new Promise((resolve) => {
    const observer = new PerformanceObserver((list) => {
      const entry = list.getEntries().find((e) => e.identifier === "first-frame");
      if (entry) resolve(entry.renderTime || entry.loadTime);
    });
    observer.observe({type: "element", buffered: true});
    setTimeout(() => resolve(null), 500);
  });
  const at = (name) => performance.getEntriesByName(name)[0].startTime;
  const resources = performance.getEntriesByType("resource");
  const linked = (pattern) => {
    const ends = resources.filter((e) => pattern.test(e.name)).map((e) => e.responseEnd);
    return ends.length ? Math.max(...ends) : null;
  };
  // This run's frame 0 (not the next run's, which the workspace warms ahead)
  const frame0 = resources.find((e) => e.name.endsWith(`/items/${window.lumenCine.itemId}/frames/0/`));
  const done = (pattern) => (resources.find((e) => pattern.test(e.name)) || {responseEnd: null}).responseEnd;
  return {
    painted,
    first: painted === null ? at("cine-first-frame") : Math.min(painted, at("cine-first-frame")),
    drawn: at("cine-first-frame"),
    all: at("cine-all-frames"),
    html: performance.getEntriesByType("navigation")[0].responseEnd,
    styles: linked(/\\.css$/),  // none: the page's styles are written into it
    scripts: linked(/\\.js$/),
    first_paint: (performance.getEntriesByName("first-contentful-paint")[0] || {startTime: null}).startTime,
    api: done(/\\/next\\/$/),
    tool: done(/tools\\/vessel_type\\.js/),
    // none: frame 0 came in the page itself (a data: URL)
    frame0: (frame0 || {startTime: null}).startTime,
    frame0_first_byte: (frame0 || {responseStart: null}).responseStart,
    frame0_done: (frame0 || {responseEnd: null}).responseEnd,
  };
}
"""

# Play one lap from frame 0 at 1× and record every frame the tool shows.
PLAYBACK_JS = """
async (lapMs) => {
  const tool = document.querySelector(".vessel-tool");
  const shown = [];
  const observer = new MutationObserver(() => shown.push([performance.now(), Number(tool.dataset.frame)]));
  observer.observe(tool, {attributes: true, attributeFilter: ["data-frame"]});
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "Home"}));
  document.dispatchEvent(new KeyboardEvent("keydown", {key: " "}));
  await new Promise((resolve) => setTimeout(resolve, lapMs));
  document.dispatchEvent(new KeyboardEvent("keydown", {key: " "}));
  observer.disconnect();
  return shown;
}
"""


def generate_run(folder: Path, frames: int, size: int) -> Path:
    from learning.cohorts import fake_patient, write_xa_run

    rng = np.random.default_rng(11)
    path = folder / "run.dcm"
    write_xa_run(path, vessel="LCA", rng=rng, patient=fake_patient(rng, 0), frames=frames, size=size)
    return path


def copies(path: Path, n: int) -> list[Path]:
    """The run and n-1 copies of it as other instances (new UIDs), so every opening shows frames not yet cached."""
    import pydicom
    from pydicom.uid import generate_uid

    paths = [path]
    for i in range(1, n):
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        paths.append(path.with_name(f"run-{i}.dcm"))
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def import_item(path: Path, runs: int):
    """Import `runs` copies of the run into a fresh vessel-type project with one annotator; return the first item
    and the username."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.db import connection

    from annotation.ingest.sources import ArchiveLimits, sources_from_path
    from annotation.models import Item, Role, TaskType
    from annotation.services import import_run, membership_set, project_create
    from tests.factories import UserFactory

    lead = UserFactory(username="bench-lead")
    annotator = UserFactory(username="bench-annotator")
    if connection.vendor == "postgresql":  # for the production server: Django's default hasher, not the tests' MD5
        hasher = PBKDF2PasswordHasher()
        annotator.password = hasher.encode(PASSWORD, hasher.salt())
    else:
        annotator.set_password(PASSWORD)
    annotator.save()
    project = project_create(slug="bench-cine", name="Cine benchmark", task_type=TaskType.VESSEL_TYPE, creator=lead)
    membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    for run in copies(path, runs):
        report = import_run(project=project, sources=sources_from_path(run, limits=ArchiveLimits(members=10)))
        assert report.summary()["items_created"] == 1, report.summary()
    return Item.objects.select_related("instance", "project").filter(project=project).first(), annotator.username


class ServerThread(threading.Thread):
    """Daphne serving the ASGI application on a free loopback port, in this process (SQLite in memory only)."""

    name = "daphne in the benchmark's process (SQLite in memory: no other process can see the database)"

    def __init__(self, application) -> None:
        super().__init__(daemon=True)
        self.server = daphne.server.Server(
            application, endpoints=["tcp:port=0:interface=127.0.0.1"], signal_handlers=False, verbosity=0
        )

    def run(self) -> None:
        self.server.run()

    @property
    def url(self) -> str:
        deadline = time.monotonic() + 20
        while not self.server.listening_addresses:
            if time.monotonic() > deadline:
                raise RuntimeError("daphne did not start listening")
            time.sleep(0.05)
        host, port = self.server.listening_addresses[0]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(reactor.stop)
        self.join(timeout=10)


def served(dicom: Path, media: Path, logs: Path):
    """Start the server the run is opened from and return it (`url`, `stop()`, `name`).

    On PostgreSQL it is the production server as `deploy/README.md` runs it (gunicorn with
    `deploy/gunicorn.conf.py`, several uvicorn worker processes, production settings) against this run's test
    database, with the two benchmark routes added (`benchmarks.cine_asgi`); on SQLite (a database in this
    process's memory) daphne in a thread of this process.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        from webapp.asgi import application

        thread = ServerThread(bench_routes(application, dicom))
        thread.start()
        return thread
    from benchmarks.http_load import Server

    params = connection.settings_dict
    url = (
        f"postgres://{params['USER'] or 'postgres'}:{params['PASSWORD'] or ''}@{params['HOST'] or '127.0.0.1'}:"
        f"{params['PORT'] or 5432}/{params['NAME']}"
    )
    server = Server(
        url, media, logs, application="benchmarks.cine_asgi:application", extra_env={"LUMEN_BENCH_DICOM": str(dicom)}
    )
    server.start()
    server.name = (
        f"gunicorn -c deploy/gunicorn.conf.py ({server.workers()} uvicorn worker processes), "
        "webapp.settings.production, PostgreSQL"
    )
    return server


# How long the page of the site shows before the annotator follows its link (the "from a page of the site" opening).
LINK_AFTER_S = 1.0


def log_in(browser, base: str, username: str) -> dict:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    state = context.storage_state()
    context.close()
    return state


def measure_once(browser, state: dict, base: str, item, frames: int, fps: float) -> dict[str, dict]:
    """One cold-cache round of the three ways to open the run; return their timings and bytes."""
    template = item_frame_template(item)
    results = {}
    for name, work in (
        ("dicom", lambda page: page.evaluate(FETCH_DICOM_JS, "/bench/dicom")),
        ("sequential", lambda page: page.evaluate(SEQUENTIAL_FRAMES_JS, {"template": template, "frames": frames})),
    ):
        context = browser.new_context(storage_state=state)
        page = context.new_page()
        page.goto(f"{base}/bench/blank")
        result = work(page)
        result.update(page.evaluate(FRAME_BYTES_JS) if name == "sequential" else {"requests": 1})
        results[name] = result
        context.close()

    # The annotator's path: the queue hands out a run; cold, a fresh context; warm, the same tab opening the next
    # run (the page's scripts and styles cached, the run's frames not: every opening is a run not seen).
    def open_workspace(page, name: str, click: str | None = None) -> None:
        if click:  # follow the page's link, as the annotator does
            page.click(click)
        else:
            page.goto(f"{base}/projects/{item.project.slug}/label/")
        page.wait_for_function("() => window.lumenCine && window.lumenCine.allFramesMs !== null", timeout=120_000)
        result = page.evaluate(WORKSPACE_MARKS_JS)
        result.update(page.evaluate(FRAME_BYTES_JS))
        result["shown"] = page.evaluate(PLAYBACK_JS, round(1100 * frames / fps))
        results[name] = result
        skip_current(item.project)

    context = browser.new_context(storage_state=state)
    page = context.new_page()
    for name in ("workspace", "workspace_warm"):
        open_workspace(page, name)
    context.close()
    # Cold cache again, but the tab already shows a page of the site, as when an annotator follows the project
    # page's Label link: the browser has a renderer process for the site, nothing of the workspace is cached. A
    # person reads that page before following the link: the navigation starts LINK_AFTER_S after it loaded, once
    # the renderer process started for the new tab has finished starting (a navigation at once shares the CPU with
    # that start, as the new-tab row measures).
    context = browser.new_context(storage_state=state)
    page = context.new_page()
    page.goto(f"{base}/bench/blank")
    time.sleep(LINK_AFTER_S)
    open_workspace(page, "workspace_linked")
    context.close()
    # As an annotator starts: the home page (the site's styles and its own scripts cached, nothing of the
    # workspace), read for LINK_AFTER_S, then its Start link of the project.
    context = browser.new_context(storage_state=state)
    page = context.new_page()
    page.goto(f"{base}/")
    time.sleep(LINK_AFTER_S)
    open_workspace(page, "workspace_start", click=f"a.start[href='/projects/{item.project.slug}/label/']")
    context.close()
    return results


def skip_current(project) -> None:
    """Skip the runs the annotator holds (the one shown and the one the workspace fetched ahead, whose first frame
    it may have cached), so the next opening gets a run the browser has not seen."""
    from annotation.models import Assignment
    from annotation.services import item_skip

    for lease in Assignment.objects.select_related("item", "annotator").filter(item__project=project, state="leased"):
        item_skip(item=lease.item, annotator=lease.annotator, reason="benchmark: next run")


def item_frame_template(item) -> str:
    from django.urls import reverse

    return reverse("api:item-frame", args=[item.pk, 0])[: -len("0/")] + "{n}/"


def playback_summary(shown: list[list[float]], frames: int) -> tuple[int, int, float]:
    """Return (frames shown in the lap, frames skipped between consecutive shows, shows per second)."""
    changes = [(t, int(n)) for i, (t, n) in enumerate(shown) if i == 0 or n != shown[i - 1][1]]
    indices = [n for _, n in changes]
    skipped = sum((b - a) % frames - 1 for a, b in zip(indices, indices[1:], strict=False))
    seconds = (changes[-1][0] - changes[0][0]) / 1000 if len(changes) > 1 else 0
    return len(set(indices)), skipped, (len(changes) - 1) / seconds if seconds else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/cine_open.txt")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine skews every number here: say how busy it was
    folder = Path(tempfile.mkdtemp(prefix="lumen-bench-cine-"))
    try:
        dicom = generate_run(folder, args.frames, args.size)
        with django_test_database():
            from django.conf import settings

            from annotation.ingest.store import media_path

            item, username = import_item(dicom, runs=8 * (args.repeats + 1))  # two runs leased per opening
            instance = item.instance
            stored_dicom = media_path(instance.file_path)
            dicom_bytes = stored_dicom.stat().st_size
            cache_bytes = sum(p.stat().st_size for p in media_path(instance.frames_dir).iterdir())
            fps = instance.frame_rate
            server = served(stored_dicom, Path(settings.MEDIA_ROOT), folder)
            try:
                rounds = run_browser(server.url, item, username, args.frames, fps, args.repeats)
            finally:
                server.stop()
            server_name = server.name
            frame_format = settings.LUMEN_FRAME_FORMAT
        text = report(
            args,
            rounds,
            dicom_bytes=dicom_bytes,
            cache_bytes=cache_bytes,
            fmt=frame_format,
            fps=fps,
            load=load,
            server=server_name,
        )
        print(text)
        if args.save:
            print(f"\nsaved to {save('cine_open.txt', text)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_browser(base: str, item, username: str, frames: int, fps: float, repeats: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from tests.frontend.conftest import CHROMIUM, CHROMIUM_ARGS

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread beside the ORM
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            state = log_in(browser, base, username)
            measure_once(browser, state, base, item, frames, fps)  # warm-up: imports, URL resolver, page cache
            return [measure_once(browser, state, base, item, frames, fps) for _ in range(repeats)]
        finally:
            browser.close()


def report(
    args, rounds: list[dict], *, dicom_bytes: int, cache_bytes: int, fmt: str, fps: float, load: float, server: str
) -> str:
    def median(name: str, key: str) -> float | None:
        values = [r[name][key] for r in rounds if r[name].get(key) is not None]
        return statistics.median(values) if values else None

    base_all = median("dicom", "all")
    rows = []
    for name, method in (
        ("dicom", "fetch the DICOM file whole (baseline)"),
        ("sequential", f"fetch + decode the {fmt} frames one by one"),
        ("workspace", "Lumen workspace, cine tool (page + API + frames)"),
        ("workspace_warm", "  the same, opening the next run (page cached)"),
        ("workspace_linked", "  the same, cold cache, from a page of the site shown 1 s"),
        ("workspace_start", "  the same, cold cache, by the home page's Start link after 1 s"),
    ):
        first, all_ = median(name, "first"), median(name, "all")
        sent = median(name, "bytes") if name != "dicom" else dicom_bytes
        rows.append(
            (
                method,
                "-" if first is None else f"{first:.0f}",
                f"{all_:.0f}",
                int(median(name, "requests")),
                f"{sent / 1e6:.2f}",
                "-" if first is None else first / base_all,
                all_ / base_all,
                sent / dicom_bytes,
            )
        )
    body = table(
        [
            "method",
            "first frame ms",
            "all frames ms",
            "requests",
            "MB sent",
            "first vs baseline",
            "all vs baseline",
            "bytes vs DICOM",
        ],
        rows,
    )
    laps = [playback_summary(r[name]["shown"], args.frames) for r in rounds for name in WORKSPACE_OPENINGS]

    def steps(name: str) -> str:
        told = [
            f"{what} {median(name, key):.0f}" if median(name, key) is not None else f"{what}: none"
            for what, key in (
                ("HTML received", "html"),
                ("styles loaded", "styles"),
                ("scripts loaded", "scripts"),
                ("first contentful paint", "first_paint"),
                ("tool module loaded", "tool"),
                ("next (with the workspace) answered", "api"),  # none: embedded in the page
                ("frame 0 requested", "frame0"),
                ("its first byte", "frame0_first_byte"),
                ("its last byte", "frame0_done"),
                ("on screen as the page's image", "painted"),
                ("drawn by the player", "drawn"),
            )
        ]
        return ", ".join(told)

    return (
        f"Cine open benchmark: one XA run of {args.frames} frames at {args.size}x{args.size} (8-bit), "
        f"DICOM {dicom_bytes / 1e6:.2f} MB, frame cache {cache_bytes / 1e6:.2f} MB as {fmt}\n"
        f"{machine_line()} · load average {load:.1f} at start · server: {server}, on 127.0.0.1 · headless Chromium, "
        f"a fresh browser context (cold cache) per round, its new tab opening the workspace at once, then the next run "
        f"in the same tab (warm), then a fresh context whose tab shows a blank page of the site for {LINK_AFTER_S:g} s "
        f"before opening the workspace, then a fresh context on the home page, whose Start link is followed after "
        f"{LINK_AFTER_S:g} s · "
        f"median of {len(rounds)} (ms since navigation start)\n\n{body}\n\n"
        f"Workspace timeline, cold (median ms): {steps('workspace')}.\n"
        f"Workspace timeline, warm (median ms): {steps('workspace_warm')}.\n"
        f"Workspace timeline, cold cache, from a page of the site shown {LINK_AFTER_S:g} s (median ms): "
        f"{steps('workspace_linked')}.\n"
        f"Workspace timeline, cold cache, by the home page's Start link after {LINK_AFTER_S:g} s (median ms): "
        f"{steps('workspace_start')}.\n"
        "('next … answered: none': the first item came embedded in the page, leased as it was rendered. 'styles "
        "loaded: none': they are written into the page. 'frame 0 requested: none': its bytes came in the page (a "
        "data: URL). The page shows frame 0 as an image (painted: Element Timing) until the player, once its module "
        "has loaded, takes that image over and draws it on its canvas. 'first frame' in the table is the earlier of "
        "the two.)\n"
        f"Playback after loading, one lap at 1x: {min(lap[0] for lap in laps)}-{max(lap[0] for lap in laps)} of "
        f"{args.frames} frames shown, {max(lap[1] for lap in laps)} skipped at most, "
        f"{statistics.median(lap[2] for lap in laps):.1f} frames/s (the run's rate: "
        f"{fps:.1f})."
    )


if __name__ == "__main__":
    main()
