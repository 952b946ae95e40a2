"""``parlai dialogft_serve -mf MODEL``: a trained model behind an OpenAI-compatible HTTP API.

    parlai dialogft_serve -mf /tmp/m/model                      # http://127.0.0.1:8080/ (chat page)
    curl -s 127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'
    parlai dialogft_serve -m dialogft_agent --hf-model Qwen/Qwen2.5-0.5B-Instruct   # no fine-tuning
    parlai dialogft_serve -mf /tmp/m/model --host 0.0.0.0 --serve-api-keys keys.txt \\
         --serve-log-db /tmp/m/log.db --inference beam --beam-size 4

Decoding is the model's saved opt (greedy for dialogft_agent); ParlAI's decoding flags given
here override it. See :mod:`parlai_dialogft.serving` for what each part does.
"""

from __future__ import annotations

from parlai.core.agents import create_agent
from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.serving.live_eval import add_live_eval_args, find_profile, live_settings_from_opt
from parlai_dialogft.serving.options import add_serve_args, settings_from_opt
from parlai_dialogft.utils.errors import UserError, one_line_errors


@register_script("dialogft_serve", hidden=False)
class DialogftServe(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(True, True, description="Serve a dialogft_agent model over HTTP (OpenAI-compatible)")
        add_serve_args(parser)
        add_live_eval_args(parser)
        return parser

    @one_line_errors("dialogft_serve")
    def run(self):
        settings = settings_from_opt(self.opt)  # before the model loads: flags fail fast
        live_settings = live_settings_from_opt(self.opt)
        profile = find_profile(self.opt.get("model_file"), live_settings.profile)

        # Web dependencies load only when serving (the rest of the package does not need them).
        try:
            from parlai_dialogft.serving.app import create_app
            from parlai_dialogft.serving.server import build_server, serve_in_foreground
        except ImportError as exc:
            raise UserError(f"missing module {exc.name!r}; pip install fastapi uvicorn prometheus-client") from None
        from parlai_dialogft.serving.live_eval import LiveEvaluation, tokenizer_of
        from parlai_dialogft.serving.replier import Replier
        from parlai_dialogft.serving.store import ConversationStore

        # Without -mf, `-m dialogft_agent --hf-model NAME` serves an untuned HF model as is.
        agent = create_agent(self.opt, requireModelExists=bool(self.opt.get("model_file")))
        store = ConversationStore(settings.log_db, settings.log_retention_days) if settings.log_db else None
        live = LiveEvaluation(live_settings, *tokenizer_of(agent), profile=profile)
        generate = Replier(agent, settings.max_batch)
        if settings.lora:  # --serve-lora: more LoRA models on this one base, chosen by the request's model
            from parlai_dialogft.serving.adapters import AdapterRouter, serve_adapters

            generate = AdapterRouter(generate, serve_adapters(agent, settings.model_name, settings.lora))
        app = create_app(settings, generate, store, live)
        server = build_server(app, settings.host, settings.port, settings.shutdown_timeout_s)
        where = f"http://{settings.host}:{settings.port}/" if settings.port else f"{settings.host} (a free port: see below)"
        logging_to = f"; logging conversations to {settings.log_db}" if store else ""
        print(f"dialogft_serve: model {settings.model_name!r} at {where} (API /v1, metrics /metrics, "
              f"dashboard /dashboard){logging_to}", flush=True)
        if profile is None:
            print("dialogft_serve: no training profile beside the model: input drift is measured without "
                  "the training distribution (write one with parlai dialogft_train_profile -mf MODEL)", flush=True)
        serve_in_foreground(server)  # SIGTERM: in-flight requests answered and logged, then status 0


if __name__ == "__main__":
    DialogftServe.main()
