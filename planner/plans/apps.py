from typing import Any

from django.apps import AppConfig


class PlansConfig(AppConfig):
    """Frequency plans. The label stays ``planner``, as the tables (``planner_*``) were named."""

    name = "planner.plans"
    label = "planner"
    verbose_name = "Frequency plans"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Stage profiles a worker cannot store become dead letters like telemetry's; replaying one (admin,
        # manage.py replay_dead_letters) needs to know what receives them, in whatever process replays it.
        from dashboard.telemetry import delivery
        from planner.plans.profiles import receive_stage_profile
        from wattwise_agent.wire import TASK_STAGE_PROFILE

        def receive(envelope: Any, memo: Any) -> Any:
            return receive_stage_profile(envelope)

        delivery.receives(TASK_STAGE_PROFILE, receive)
