"""Provider-agnostic model calls over the official OpenAI and Anthropic SDKs (no Django)."""
from episodes.engine.llm.client import PROTOCOLS, ChatResult, EndpointConfig, LLMClient

__all__ = ["PROTOCOLS", "ChatResult", "EndpointConfig", "LLMClient"]
