"""Customer notifications: acknowledgment of every report, proactive outage notices, crew/ETA and ETR updates,
restoration notices — rendered from templates, chosen by policy, delivered from the transactional outbox.

Modules: :mod:`~api.notify.templates` (what is said, per kind, language and channel), :mod:`~api.notify.channels`
(how it is sent: SMTP, an HTTP SMS gateway, webhook, log, voice), :mod:`~api.notify.policy` (who gets what and when:
pure decisions), :mod:`~api.notify.planner` (turns event changes into outbox rows), :mod:`~api.notify.worker`
(claims outbox rows and delivers them), :mod:`~api.notify.sla` (acknowledgment SLA for dispatchers),
:mod:`~api.web.routes.notify` (inbound SMS keywords, SLA and dead-letter endpoints), :mod:`~api.notify.models` (tables).
"""
