"""Perseus frequency planning for pipeline-parallel training, as a pure library.

Perseus (Chung et al., SOSP'24) removes energy bloat from pipeline-parallel training by slowing
down, with lower GPU frequencies, the computations that do not limit the iteration time. This
package plans it: from a per-computation profile to the whole iteration time–energy frontier, with
a frequency plan at every point. No Django, no Celery, no torch: numpy and scipy only.

Typical use::

    from planner import perseus

    profile = perseus.parse_profile(csv_bytes)
    problem = perseus.PlanningProblem(num_stages=8, num_microbatches=12,
                                      unit_time_s=0.001, p_blocking_w=83.64)
    frontier = perseus.solve_frontier(profile, problem)
    plan = perseus.plan_at(frontier, -1)                   # fastest point
    plan.rank_schedules()                                  # per-rank JSON-ready dicts
    choice = perseus.choose_for_straggler(frontier, profile, straggler_time_s=3.2)

Modules, one algorithm each: :mod:`.profile` (CSV and validation), :mod:`.options` (Pareto
filter, quantisation, effective energy), :mod:`.cost_model` (exponential fit, convex hull),
:mod:`.bounds` (marginal costs), :mod:`.schedule` (1F1B, GPipe), :mod:`.dag` (computation DAG),
:mod:`.mincut` (incremental min cut with lower bounds), :mod:`.solver` (Phillips–Dessouky),
:mod:`.frontier` (results and storage), :mod:`.planner` (putting it together), :mod:`.plans`
(per-rank JSON/CSV), :mod:`.evaluate` (discrete re-evaluation, timelines), :mod:`.straggler`
(choice under a straggler), :mod:`.synthetic` (synthetic profiles).
"""

from planner.perseus.errors import (
    FrontierFormatError,
    PlannerError,
    ProblemTooLargeError,
    ProfileError,
    StragglerError,
)
from planner.perseus.evaluate import (
    Evaluation,
    TimelineEntry,
    evaluate_all_max,
    evaluate_frequencies,
    evaluate_point,
    realised_frontier,
    timeline,
)
from planner.perseus.frontier import Frontier, PlanningProblem
from planner.perseus.options import Mode
from planner.perseus.planner import solve_frontier
from planner.perseus.plans import Plan, PlanStep, plan_at
from planner.perseus.profile import Profile, load_profile, parse_profile
from planner.perseus.schedule import Schedule
from planner.perseus.solver import ProgressCallback
from planner.perseus.straggler import StragglerChoice, choose_for_straggler, choose_index
from planner.perseus.synthetic import synthetic_profile, synthetic_profile_csv

__all__ = [
    "Evaluation",
    "Frontier",
    "FrontierFormatError",
    "Mode",
    "Plan",
    "PlanStep",
    "PlannerError",
    "PlanningProblem",
    "ProblemTooLargeError",
    "Profile",
    "ProfileError",
    "ProgressCallback",
    "Schedule",
    "StragglerChoice",
    "StragglerError",
    "TimelineEntry",
    "choose_for_straggler",
    "choose_index",
    "evaluate_all_max",
    "evaluate_frequencies",
    "evaluate_point",
    "load_profile",
    "parse_profile",
    "plan_at",
    "realised_frontier",
    "solve_frontier",
    "synthetic_profile",
    "synthetic_profile_csv",
    "timeline",
]
