"""The fleet: `ima worker` processes that join over NATS and take a share of the inference.

Workers do pure work (embed, compose) and never touch the store; `ima serve`'s
supervisor routes each job, retries, hedges, spot-checks and verifies what comes back.
"""
