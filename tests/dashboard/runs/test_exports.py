"""Downloads: a run's samples (raw or per minute), its summary and the runs list as CSV, streamed."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import UTC, datetime

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from dashboard.runs import exports
from dashboard.runs.ranges import parse_instant_ms
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu, RunTag, SampleWindow
from dashboard.telemetry.windows import overlapping
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, member, register, simple_batch

pytestmark = pytest.mark.django_db

# Four 1 s windows from 00:00:58 to 00:01:01.9 UTC: two in the first minute, two in the second.
START_MS = T0_MS + 58_000
SAMPLES = 10


def sent(seq: int, gpu: int) -> dict[str, list[int]]:
    """What the agent sent for a GPU in batch ``seq``: power varies per sample so values can be checked."""
    t0 = START_MS + seq * SAMPLES * 100
    return {
        "t_ms": [t0 + 100 * i for i in range(SAMPLES)],
        "energy_mj": [5_000_000 * (gpu + 1) + 31_337 * (seq * SAMPLES + i) for i in range(SAMPLES)],
        "power_mw": [250_000 + 1_001 * i + 7 * seq + gpu for i in range(SAMPLES)],
    }


def batch(node, seq: int, *, run: str = "llama-7b") -> dict:
    gpus = []
    for gpu in (0, 1):
        s = sent(seq, gpu)
        prev = (s["t_ms"][0] - 100, s["energy_mj"][0] - 31_337) if seq else None
        gpus.append(gpu_entry(f"GPU-{gpu + 1}", s["t_ms"], s["energy_mj"], index=gpu, power_mw=s["power_mw"],
                              prev=prev))
    return envelope(node, batch_payload(gpus, run=run, seq=seq))


@pytest.fixture
def run(client):
    node = register("node-a", "vision")
    for seq in range(4):
        assert ingest.ingest_batch(batch(node, seq)).status == "stored"
    client.force_login(member("ana", "vision"))
    return Run.objects.get(name="llama-7b")


def download(client, name: str, *args, **params) -> tuple[list[str], list[dict[str, str]]]:
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    reader = csv.DictReader(io.StringIO(body.decode()))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


# --- raw samples ---------------------------------------------------------------------------------------


def test_raw_samples_have_units_in_the_header_and_one_row_per_ingested_sample(client, run):
    header, rows = download(client, "run_samples_csv", run.pk)
    assert header == exports.SAMPLE_HEADER
    assert header == ["time_utc", "t_ms", "node", "gpu_index", "gpu_uuid", "power_w", "energy_counter_j",
                      "sm_clock_mhz", "util_pct", "temp_c", "component"]
    assert len(rows) == 2 * 4 * SAMPLES
    assert {r["component"] for r in rows} == {"gpu"}
    for gpu in (0, 1):
        mine = [r for r in rows if r["gpu_uuid"] == f"GPU-{gpu + 1}"]
        expected = {key: [v for seq in range(4) for v in sent(seq, gpu)[key]] for key in ("t_ms", "energy_mj", "power_mw")}
        assert [int(r["t_ms"]) for r in mine] == expected["t_ms"]
        assert [round(float(r["power_w"]) * 1000) for r in mine] == expected["power_mw"]
        assert [round(float(r["energy_counter_j"]) * 1000) for r in mine] == expected["energy_mj"]
        assert {(r["node"], r["gpu_index"], r["sm_clock_mhz"], r["util_pct"], r["temp_c"]) for r in mine} == {
            ("node-a", str(gpu), "1980", "90", "60")
        }


def test_sample_times_are_utc_iso_8601_and_epoch_milliseconds_of_the_same_instant(client, run):
    _, rows = download(client, "run_samples_csv", run.pk)
    first = rows[0]
    assert first["time_utc"] == "2026-01-01T00:00:58.000Z"
    assert datetime.fromisoformat(first["time_utc"]).timestamp() * 1000 == int(first["t_ms"])


def test_the_download_is_a_streamed_attachment_named_after_the_run(client, run):
    response = client.get(reverse("run_samples_csv", args=[run.pk]))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="vision-llama-7b-samples.csv"'


def test_a_time_range_keeps_only_samples_inside_it_even_mid_window(client, run):
    # From the middle of the second window to the middle of the third, half-open.
    from_ms, to_ms = START_MS + 1_350, START_MS + 2_500
    _, rows = download(client, "run_samples_csv", run.pk, **{"from": from_ms, "to": to_ms})
    times = sorted({int(r["t_ms"]) for r in rows})
    assert times == list(range(START_MS + 1_400, START_MS + 2_500, 100))
    assert len(rows) == 2 * len(times)


def test_iso_and_epoch_millisecond_bounds_select_the_same_samples(client, run):
    _, by_ms = download(client, "run_samples_csv", run.pk, **{"from": START_MS + 2_000})
    _, by_iso = download(client, "run_samples_csv", run.pk, **{"from": "2026-01-01T00:01:00Z"})
    _, by_offset = download(client, "run_samples_csv", run.pk, **{"from": "2026-01-01T02:01:00+02:00"})
    assert by_ms == by_iso == by_offset
    assert len(by_ms) == 2 * 2 * SAMPLES


def test_only_windows_overlapping_the_range_are_read(run):
    run_gpu = RunGpu.objects.get(run=run, gpu__uuid="GPU-1")
    read = lambda params: [  # noqa: E731
        w.first_ms for w in overlapping([run_gpu.pk], exports.parse_range(params)).order_by("first_ms")
    ]
    firsts = sorted(SampleWindow.objects.filter(run_gpu=run_gpu).values_list("first_ms", flat=True))
    # A window that starts before `from` but reaches into the range is read; the one before it is not.
    assert read({"from": str(START_MS + 1_350), "to": str(START_MS + 2_500)}) == firsts[1:3]
    # `to` is exclusive: the window starting at it is not read.
    assert read({"from": str(START_MS + 1_000), "to": str(START_MS + 2_000)}) == firsts[1:2]
    assert read({"to": str(START_MS + 1_000)}) == firsts[:1]
    assert read({"from": str(START_MS + 3_850)}) == firsts[3:]
    assert read({"from": str(START_MS + 10_000)}) == []


def test_a_long_window_of_another_stream_reaching_into_the_range_is_read(client):
    node = register("node-a", "vision")
    # Stream "short" sends 1 s windows; stream "long", recording the same GPU, one 3 s window.
    for seq in range(3):
        assert ingest.ingest_batch(simple_batch(node, seq=seq, stream="short")).status == "stored"
    t_ms = [T0_MS + 50 + 100 * i for i in range(30)]
    long = batch_payload([gpu_entry("GPU-1", t_ms, [9_000_000 + 1_000 * i for i in range(30)])], stream="long")
    assert ingest.ingest_batch(envelope(node, long)).status == "stored"
    client.force_login(member("ana", "vision"))
    _, rows = download(client, "run_samples_csv", Run.objects.get().pk, **{"from": T0_MS + 2_500})
    assert sorted(int(r["t_ms"]) for r in rows) == sorted(
        [T0_MS + t for t in range(2_500, 3_000, 100)] + [T0_MS + t for t in range(2_550, 3_000, 100)]
    )


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": START_MS + 2_000, "to": START_MS + 1_000}, "must be before"),
        ({"from": "2026-01-01T00:01:00Z", "to": "2026-01-01T00:00:00Z"}, "must be before"),
        ({"from": START_MS, "to": START_MS}, "must be before"),
        ({"from": "yesterday"}, "is not a time"),
        ({"to": "2026-13-01"}, "is not a time"),
        ({"from": "99999999999999999999"}, "is not a time"),
        ({"to": "-5"}, "is not a time"),
        ({"resolution": "hourly"}, "expected one of raw, minute"),
    ],
)
def test_bad_parameters_are_a_400_with_a_plain_text_message(client, run, params, message):
    response = client.get(reverse("run_samples_csv", args=[run.pk]), params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()


def test_an_offset_whose_plus_sign_was_decoded_as_a_space_is_still_understood():
    assert parse_instant_ms("2026-01-01T02:00:00 02:00", "from") == T0_MS


@pytest.mark.parametrize("name", ["run_samples_csv", "run_summary_csv"])
def test_another_projects_run_is_not_found_whatever_the_parameters(client, run, name):
    theirs = register("node-b", "speech")
    ingest.ingest_batch(simple_batch(theirs, run="their-run", uuid="GPU-9"))
    their_run = Run.objects.get(name="their-run")
    assert client.get(reverse(name, args=[their_run.pk])).status_code == 404
    assert client.get(reverse(name, args=[their_run.pk]), {"from": "nonsense"}).status_code == 404
    assert client.get(reverse(name, args=[987654])).status_code == 404


@pytest.mark.parametrize("name", ["run_samples_csv", "run_summary_csv", "runs_csv"])
def test_anonymous_users_are_sent_to_login(client, run, name):
    client.logout()
    response = client.get(reverse(name, args=[] if name == "runs_csv" else [run.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_script_can_download_with_a_bearer_token_instead_of_a_session(client, run):
    from dashboard.projects.tokens import issue_token

    token = issue_token(run.project.members.get())
    client.logout()
    response = client.get(reverse("run_samples_csv", args=[run.pk]), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content).splitlines()) == 1 + 2 * 4 * SAMPLES


@pytest.mark.parametrize("name", ["run_samples_csv", "runs_csv"])
def test_a_wrong_token_is_a_401_not_a_login_page(client, run, name):
    response = client.get(reverse(name, args=[] if name == "runs_csv" else [run.pk]),
                          headers={"Authorization": "Bearer ww_wrong"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- minute rollups ------------------------------------------------------------------------------------


def test_minute_rollups_add_up_to_the_run_totals(client, run):
    header, rows = download(client, "run_samples_csv", run.pk, resolution="minute")
    assert header == exports.MINUTE_HEADER
    assert [(r["minute_utc"], r["gpu_uuid"]) for r in rows] == [
        ("2026-01-01T00:00:00.000Z", "GPU-1"), ("2026-01-01T00:01:00.000Z", "GPU-1"),
        ("2026-01-01T00:00:00.000Z", "GPU-2"), ("2026-01-01T00:01:00.000Z", "GPU-2"),
    ]
    for run_gpu in RunGpu.objects.filter(run=run).select_related("gpu"):
        mine = [r for r in rows if r["gpu_uuid"] == run_gpu.gpu.uuid]
        assert sum(float(r["energy_j"]) for r in mine) == pytest.approx(run_gpu.energy_j)
        assert sum(int(r["samples"]) for r in mine) == run_gpu.samples == 40
        assert max(float(r["max_power_w"]) for r in mine) == pytest.approx(run_gpu.peak_power_w)
    first = rows[0]
    power_w = [p / 1000 for seq in (0, 1) for p in sent(seq, 0)["power_mw"]]
    assert float(first["mean_power_w"]) == pytest.approx(sum(power_w) / len(power_w))
    assert float(first["min_power_w"]) == pytest.approx(min(power_w))
    assert (first["mean_sm_clock_mhz"], first["mean_util_pct"], first["max_temp_c"]) == ("1980.0", "90.0", "60.0")


def test_a_time_range_selects_the_minutes_it_overlaps(client, run):
    _, rows = download(client, "run_samples_csv", run.pk, resolution="minute", **{"from": START_MS + 2_500})
    assert {r["minute_ms"] for r in rows} == {str(T0_MS + 60_000)}
    _, rows = download(client, "run_samples_csv", run.pk, resolution="minute", to=T0_MS + 60_000)
    assert {r["minute_ms"] for r in rows} == {str(T0_MS)}


# --- summary ---------------------------------------------------------------------------------------------


def test_summary_csv_has_a_row_per_gpu_and_a_total_matching_summary_json(client, run):
    summary = client.get(reverse("run_summary", args=[run.pk])).json()
    header, rows = download(client, "run_summary_csv", run.pk)
    assert header == exports.SUMMARY_HEADER
    assert {"energy_j", "energy_kwh", "mean_power_w", "peak_power_w", "duration_s", "location_emissions_g"} <= set(header)
    assert [r["scope"] for r in rows] == ["gpu", "gpu", "total"]
    total = rows[-1]
    assert float(total["energy_j"]) == pytest.approx(summary["energy_j"])
    assert float(total["energy_kwh"]) == pytest.approx(summary["energy_kwh"])
    assert int(total["samples"]) == summary["samples"] == 80
    assert float(total["mean_power_w"]) == pytest.approx(summary["mean_power_w"])
    assert float(total["peak_power_w"]) == pytest.approx(summary["peak_gpu_power_w"])
    for row in rows[:2]:
        gpu = summary["gpus"][row["gpu_uuid"]]
        assert float(row["energy_j"]) == pytest.approx(gpu["energy_j"])
        assert float(row["mean_power_w"]) == pytest.approx(gpu["mean_power_w"])
        assert (row["node"], int(row["gpu_index"])) == (gpu["node"], gpu["index"])


def test_summary_csv_carries_the_runs_stored_emissions_and_offset_quote(client, run):
    from planner.carbon import tasks
    from planner.carbon.figures import run_summary

    pending = download(client, "run_summary_csv", run.pk)[1]  # an export reads; it never computes
    assert (pending[-1]["location_emissions_g"], pending[-1]["carbon_status"]) == ("", "pending")
    tasks.recompute_run(run.pk)  # what the task queued by the run's samples does
    _, rows = download(client, "run_summary_csv", run.pk)
    carbon = run_summary(run)
    total = rows[-1]
    assert float(total["location_emissions_g"]) == pytest.approx(carbon["emissions_g"])
    assert float(total["market_emissions_g"]) == pytest.approx(carbon["market_emissions_g"])
    assert sum(float(r["location_emissions_g"]) for r in rows[:2]) == pytest.approx(carbon["emissions_g"])
    assert total["offset_basis"] in ("location", "market")
    assert float(total["offset_emissions_g"]) > 0
    assert {r["carbon_status"] for r in rows} == {"current"}


def test_summary_csv_still_answers_when_carbon_cannot_be_read(client, run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("carbon tables unavailable")

    monkeypatch.setattr(exports, "run_carbon", broken)
    _, rows = download(client, "run_summary_csv", run.pk)
    assert rows[-1]["location_emissions_g"] == "" and rows[-1]["carbon_status"] == ""
    assert float(rows[-1]["energy_j"]) > 0


def test_a_run_with_no_samples_yet_exports_a_header_and_an_empty_total(client, run):
    empty = Run.objects.create(project=run.project, name="just-opened")
    assert download(client, "run_samples_csv", empty.pk)[1] == []
    assert download(client, "run_samples_csv", empty.pk, resolution="minute")[1] == []
    rows = download(client, "run_summary_csv", empty.pk)[1]
    assert [(r["scope"], r["energy_j"], r["samples"], r["first_sample_utc"]) for r in rows] == [("total", "0", "0", "")]


def test_names_that_a_spreadsheet_would_run_as_formulas_are_defused(client):
    node = register("node-a", "vision")
    ingest.ingest_batch(simple_batch(node, run="=HYPERLINK(1)"))
    client.force_login(member("ana", "vision"))
    _, rows = download(client, "runs_csv")
    assert rows[0]["run"] == "'=HYPERLINK(1)"


# --- the runs list ---------------------------------------------------------------------------------------


@pytest.fixture
def many_runs(client):
    ours, theirs = register("node-a", "vision"), register("node-b", "speech")
    for i in range(55):  # more than one page of the runs list (50)
        ingest.ingest_batch(simple_batch(ours, run=f"run-{i:02d}", stream=f"s{i}", step_mj=1_000 * (i + 1)))
    ingest.ingest_batch(simple_batch(theirs, run="their-run", uuid="GPU-9"))
    RunTag.objects.create(run=Run.objects.get(name="run-07"), name="nightly")
    Run.objects.filter(name__in=["run-01", "run-02"]).update(status=Run.Status.FINISHED)
    client.force_login(member("ana", "vision"))


def test_runs_csv_has_every_visible_run_and_no_other_projects(client, many_runs):
    header, rows = download(client, "runs_csv")
    assert header == exports.RUNS_HEADER
    assert {"energy_j", "energy_kwh", "duration_s", "mean_power_w"} <= set(header)
    assert sorted(r["run"] for r in rows) == [f"run-{i:02d}" for i in range(55)]
    assert {r["project"] for r in rows} == {"vision"}
    run = Run.objects.get(name="run-07")
    row = next(r for r in rows if r["run"] == "run-07")
    assert float(row["energy_j"]) == pytest.approx(RunGpu.objects.get(run=run).energy_j)
    assert (row["tags"], row["gpus"], row["samples"], row["status"]) == ("nightly", "1", "10", "running")


def test_runs_csv_honours_the_runs_pages_filters_and_sort(client, many_runs):
    assert sorted(r["run"] for r in download(client, "runs_csv", status="finished")[1]) == ["run-01", "run-02"]
    assert [r["run"] for r in download(client, "runs_csv", tag="nightly")[1]] == ["run-07"]
    assert download(client, "runs_csv", project="speech")[1] == []
    by_energy = [r["run"] for r in download(client, "runs_csv", sort="-energy")[1]]
    assert by_energy == [f"run-{i:02d}" for i in reversed(range(55))]
    assert [r["run"] for r in download(client, "runs_csv", sort="name")[1]][:3] == ["run-00", "run-01", "run-02"]


def test_runs_csv_is_a_streamed_attachment(client, many_runs):
    response = client.get(reverse("runs_csv"))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"] == 'attachment; filename="wattwise-runs.csv"'


# --- memory ----------------------------------------------------------------------------------------------


def test_exporting_a_run_five_times_bigger_does_not_take_five_times_the_memory(client, monkeypatch):
    """Streaming keeps at most a chunk of windows in memory, so the peak stays flat as runs grow.

    The chunk is made small here so that both runs span several chunks, as a real run of millions of
    samples does with the default chunk.
    """
    monkeypatch.setattr(exports, "WINDOW_CHUNK", 10)
    node = register("node-a", "vision")
    client.force_login(member("ana", "vision"))
    for name, windows in (("small", 30), ("big", 150)):
        for seq in range(windows):
            outcome = ingest.ingest_batch(simple_batch(node, run=name, stream=name, seq=seq, samples=50))
            assert outcome.status == "stored"

    def peak_and_size(name: str) -> tuple[int, int]:
        url = reverse("run_samples_csv", args=[Run.objects.get(name=name).pk])
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        response = client.get(url)
        size = sum(len(chunk) for chunk in response.streaming_content)
        return tracemalloc.get_traced_memory()[1] - start, size

    peak_and_size("small")  # warm up: compiled queries, imports, caches
    tracemalloc.start()
    try:
        small_peak, small_size = peak_and_size("small")
        big_peak, big_size = peak_and_size("big")
    finally:
        tracemalloc.stop()
    assert big_size > 4.5 * small_size
    assert big_peak < 1.5 * small_peak, (small_peak, big_peak)


def test_stream_chunks_hold_many_rows_each():
    rows = ((i, "x" * 10) for i in range(20_000))
    chunks = list(exports.csv_chunks(["i", "text"], rows, chunk_chars=4096))
    assert 30 < len(chunks) < 200
    assert "".join(chunks).splitlines()[-1] == "19999,xxxxxxxxxx"


def test_utc_text_is_the_iso_form_of_epoch_milliseconds():
    assert exports.utc_text(T0_MS + 1) == "2026-01-01T00:00:00.001Z"
    assert datetime.fromisoformat(exports.utc_text(T0_MS)) == datetime(2026, 1, 1, tzinfo=UTC)
