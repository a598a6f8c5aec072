"""The recording gateway: agents call it as their model API with a per-episode token; it
forwards to the episode's real endpoint and records every call as an LLMCall.

* ``core``       — the ASGI app and forwarding (no Django): ``GatewayApp``, ``Upstream``
* ``reassemble`` — SSE parsing and reassembly of streamed answers (no Django)
* ``store``      — the Django hooks: token → upstream, call → LLMCall row + episode totals
* ``server``     — ``build_app()``, ``serve_in_background()``, ``gateway_url()``
"""
