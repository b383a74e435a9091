"""In a real browser: a lead trains a frame interpolator from the project page and reads its evaluation."""

from __future__ import annotations

import pytest

from annotation.models import InterpolationModel, Job, JobKind
from tests.cohort_projects import vessel_cohort
from tests.frontend.test_browser_import import log_in
from tests.jobs import run_next_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lead_trains_an_interpolator_and_sees_the_evaluation_table(
    page, live_server, lead, vessel_project, executor, tmp_path, screenshot
):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=4, runs=1)
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#interpolation[data-ready]", state="attached")
    assert page.locator("#interpolation-empty").is_visible()
    assert "4 usable cine runs of 4 patients" in page.locator("#interpolation-runs").inner_text()
    page.fill("#interpolation-steps", "3")
    page.click("#interpolation-start")
    page.wait_for_selector("#interpolation-job:not([hidden])", timeout=10000)
    job = Job.objects.get(project=vessel_project, kind=JobKind.INTERPOLATE)
    assert job.params["params"]["steps"] == 3

    job = run_next_job(executor)
    assert job.status == "succeeded", job.error
    page.wait_for_selector("#interpolation-table tr[data-method='model']", timeout=20000)
    row = InterpolationModel.objects.get(job=job)
    cells = page.locator("#interpolation-table tr[data-protocol='clips'][data-method='model'] td").all_inner_texts()
    assert cells[2] == f"{row.metrics['clips']['model']['psnr']:.2f}"
    assert cells[4] == str(row.metrics["clips"]["n_frames"])
    paper = page.locator("#interpolation-table tr[data-protocol='triplets'][data-method='paper']").inner_text()
    assert "40.52" in paper and "0.962" in paper
    assert "held-out patients" in page.locator(".interpolation-summary").inner_text()
    assert page.locator("#interpolation-job").is_hidden() and page.locator("#interpolation-empty").is_hidden()
    screenshot("interpolation")
