"""``echo-embeddings serve``: the OpenAI-compatible HTTP server.

- [echo_embeddings.serving.app][]: the ASGI application, its routes, errors and metrics;
- [echo_embeddings.serving.config][]: [ServerConfig][echo_embeddings.serving.config.ServerConfig], its settings (no
  web framework needed to import it);
- [echo_embeddings.serving.batcher][]: the dynamic batcher that lets concurrent requests share forward passes.
"""
