"""A worker's ingest task survives the database going away: it reopens the connection and stores the message;
what still fails is kept whole as a dead letter that staff see and replay, never acknowledged and dropped."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from dashboard.telemetry import delivery
from dashboard.telemetry.models import BatchReceipt, DeadLetter, Run
from tests.factories import envelope, member, register, simple_batch
from wattwise_agent.wire import TASK_CLOSE_RUN, TASK_INGEST_BATCH

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def drop_this_connection() -> None:
    """The database ends this thread's connection under it, as a restart does; Django does not know yet."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def terminate() -> None:
        from django.db import connection as other

        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.close()

    killer = threading.Thread(target=terminate)
    killer.start()
    killer.join(timeout=30)


def test_a_dropped_database_connection_is_reopened_and_the_batch_stored(postgres, settings):
    settings.WATTWISE_DB_RETRY_S = 30
    node = register()
    drop_this_connection()
    outcome = delivery.deliver(TASK_INGEST_BATCH, simple_batch(node), None)
    assert outcome["status"] == "stored"
    assert BatchReceipt.objects.count() == 1 and not DeadLetter.objects.exists()


def test_a_message_that_still_fails_is_kept_as_a_dead_letter_that_staff_see_and_replay(postgres, settings, client):
    settings.WATTWISE_DB_RETRY_S = 0  # no retries: the first failure is final
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    node = register()
    message = simple_batch(node)
    drop_this_connection()
    outcome = delivery.deliver(TASK_INGEST_BATCH, message, None)
    assert outcome["status"] == delivery.DEAD_LETTER
    letter = DeadLetter.objects.get()
    assert letter.task == TASK_INGEST_BATCH and letter.node_name == node.name
    assert json.loads(letter.envelope_json) == message and "OperationalError" in letter.error
    assert not BatchReceipt.objects.exists()

    client.force_login(member("ana", "vision"))
    assert 'id="dead-letter-banner"' not in client.get("/runs/").content.decode()  # members are not told
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(admin)
    assert "1 agent message could not be" in client.get("/runs/").content.decode()

    response = client.post("/admin/telemetry/deadletter/",
                           {"action": "replay_selected", "_selected_action": [letter.pk]}, follow=True)
    assert response.status_code == 200 and "stored" in response.content.decode()
    letter.refresh_from_db()
    assert letter.replayed_at is not None and letter.replay_outcome.startswith("stored")
    assert BatchReceipt.objects.count() == 1
    assert 'id="dead-letter-banner"' not in client.get("/runs/").content.decode()


def test_replay_dead_letters_stores_a_lost_close_and_leaves_nothing_to_replay(postgres):
    node = register()
    close = {"run": "r", "stream": "s1", "ended_ms": 1_767_225_660_000, "last_seq": None, "samples_sent": 0}
    DeadLetter.objects.create(task=TASK_CLOSE_RUN, node_name=node.name,
                              envelope_json=json.dumps(envelope(node, close, kind="close_run")), error="test")
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_dead_letters", stdout=out, stderr=err)
    assert "closed" in out.getvalue() and "0 dead letter(s) left" in err.getvalue()
    assert Run.objects.get(name="r").status == Run.Status.FINISHED
