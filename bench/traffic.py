"""The simulated CRM traffic every benchmark measures on, chosen the same
way everywhere so that numbers from different scripts describe one data set."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from processor.rules.config import RuleSet
from processor.simulate import Simulation, simulate

START = datetime(2026, 1, 1, tzinfo=UTC)


def add_traffic_arguments(parser: argparse.ArgumentParser, opportunities: int) -> None:
    parser.add_argument("--opportunities", type=int, default=opportunities)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--format", default="mixed")
    parser.add_argument("--seed", type=int, default=1)


def simulated(args: argparse.Namespace, rules: RuleSet) -> Simulation:
    return simulate(opportunities=args.opportunities, days=args.days, seed=args.seed,
                    fmt=args.format, start=START, rules=rules)
