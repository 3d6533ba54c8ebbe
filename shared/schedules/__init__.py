"""Recurring work: schedules that start a move at each tick of a cron (see `shared.schedules.service`)."""
