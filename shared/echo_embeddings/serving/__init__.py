"""``echo-embeddings serve``: the OpenAI-compatible HTTP server.

- :mod:`echo_embeddings.serving.app`: the ASGI application, its routes, errors and metrics;
- :mod:`echo_embeddings.serving.config`: :class:`~echo_embeddings.serving.config.ServerConfig`, its settings (no
  web framework needed to import it);
- :mod:`echo_embeddings.serving.batcher`: the dynamic batcher that lets concurrent requests share forward passes.
"""
