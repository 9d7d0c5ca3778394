"""A/B statistics a shop can trust: estimates with intervals, uplift, sample-ratio checks,
sequential tests, a sample-size planner, a pilot simulator and an HTML report.

``sessionrec abtest report|plan|simulate`` (:mod:`sessionrec.abtest.cli`). The input is the
per-session export described in :mod:`sessionrec.abtest.export`.
"""
