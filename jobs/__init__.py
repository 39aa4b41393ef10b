"""The job system: dramatiq broker set-up, the send actor, the due-work scheduler and the worker.

The database is the source of truth for what must be sent and when; the broker only carries
"send outbox row N now". Losing the broker or restarting every process loses no message.
"""
