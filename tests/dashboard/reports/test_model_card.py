"""A run's model-card emissions: the YAML block `model_card RUN` prints, the run page's download and the API
all say what `run_summary` says, in a form the Hugging Face Hub's own model-card metadata class reads."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.urls import reverse
from huggingface_hub import ModelCard, ModelCardData

from dashboard.demo import seed as demo
from dashboard.telemetry.models import Run
from tests.e2e.data import stream_batches
from tests.factories import member, register

pytestmark = pytest.mark.django_db


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def seeded_demo(quick_demo, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the recomputes queued as the runs close
        call_command("seed_demo", "--quiet", stdout=io.StringIO())


def hub_block(text: str) -> dict:
    """The block as the Hub reads a model card's front matter, checked by its own metadata class."""
    card = ModelCard(f"---\n{text}---\n# a model\n", ignore_metadata_errors=False)
    assert isinstance(card.data, ModelCardData)
    return card.data.to_dict()["co2_eq_emissions"]


def test_the_model_card_of_a_demo_run_is_hub_metadata_whose_emissions_are_run_summarys(seeded_demo, client):
    name = "bert-large-finetune"
    text = command("model_card", name)
    block = hub_block(text)
    assert block == yaml.safe_load(text)["co2_eq_emissions"]
    summary = json.loads(command("run_summary", name))
    assert block["emissions"] == summary["emissions_g"] > 0
    assert block["emissions_market_based"] == summary["market_emissions_g"]
    assert block["energy_kwh"] == pytest.approx(summary["energy_kwh"])
    assert block["training_type"] == "fine-tuning"  # its tag "finetune"
    assert block["hardware_used"].startswith("2 x ")  # one node of 2 GPUs
    assert "DE (site demo-frankfurt)" in block["geographical_location"]
    assert "Electricity Maps" in block["source"]

    # The run page offers the same YAML as a download; the API answers the same block.
    client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    run = Run.objects.get(name=name)
    assert 'id="download-model-card"' in client.get(reverse("run", args=[run.pk])).content.decode()
    download = client.get(reverse("run_model_card", args=[run.pk]))
    assert download["Content-Disposition"] == 'attachment; filename="demo-bert-large-finetune-model-card.yaml"'
    assert download.content.decode() == text
    answer = client.get("/api/model-card", {"runs": str(run.pk)}).json()
    assert answer["co2_eq_emissions"] == block and answer["yaml"] == text


def test_runs_that_trained_one_model_add_up_and_name_every_place_and_training_type(seeded_demo, client):
    names = ["llama-13b-pretrain", "bert-large-finetune"]
    block = hub_block(command("model_card", *names))
    emissions = [json.loads(command("run_summary", n))["emissions_g"] for n in names]
    assert block["emissions"] == pytest.approx(sum(emissions))
    assert block["training_type"] == "pre-training and fine-tuning"
    assert "aws:eu-north-1 (SE-SE3)" in block["geographical_location"]  # llama's second node: a region
    client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    assert client.get("/api/model-card", {"runs": ",".join(names)}).json()["co2_eq_emissions"] == block


def test_a_run_whose_figures_are_being_computed_gets_no_model_card_and_is_told_why(client):
    stream_batches(register("node-a", "vision"), "bert", range(3))  # the recompute is queued, not run
    run = Run.objects.get(name="bert")
    with pytest.raises(CommandError, match="being computed"):
        command("model_card", "bert")
    member("ana", "vision")
    client.login(request=HttpRequest(), username="ana", password="pw-ana")
    response = client.get(reverse("run_model_card", args=[run.pk]))
    assert response.status_code == 409 and "being computed" in response.content.decode()
    assert client.get("/api/model-card", {"runs": "bert"}).status_code == 409


def test_another_projects_run_has_no_model_card_for_you(client):
    stream_batches(register("node-a", "vision"), "bert", range(1))
    member("eve", "other")
    client.login(request=HttpRequest(), username="eve", password="pw-eve")
    run = Run.objects.get(name="bert")
    assert client.get(reverse("run_model_card", args=[run.pk])).status_code == 404
    assert client.get("/api/model-card", {"runs": str(run.pk)}).status_code == 404
    with pytest.raises(CommandError, match="no run 'nope'"):
        command("model_card", "nope")
