#!/usr/bin/env python3
"""Golden multiple-negatives ranking loss for `tasklm train --task retrieval`.

Writes into tests/fixtures/:
  tiny_retriever/       a sentence-transformers directory over tiny_encoder's random BertModel
                        and WordPiece tokenizer, with dropout 0 so the loss is deterministic:
                        config.json, model.safetensors, tokenizer files, modules.json
                        (Transformer, mean Pooling, Normalize), 1_Pooling/config.json,
                        sentence_bert_config.json (max_seq_length 24, so long texts are cut)
  mnrl_golden.json      the batch (queries, positives, hard negatives), sentence-transformers'
                        MultipleNegativesRankingLoss (scale 20, cosine) with and without the
                        negatives, and the versions used
  mnrl_golden.safetensors  the sentence embeddings of the batch and d loss / d parameter for
                        every parameter (`grad.{name}`, the loss with negatives)

  python scripts/golden/mnrl.py
"""
import json, os, shutil
import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from versions import print_versions, versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
SRC = os.path.join(FIX, "tiny_encoder")
OUT = os.path.join(FIX, "tiny_retriever")

QUERIES = ["where does john live?", "what is the capital of france?",
           "who works for acme?", "what colour is the sky?"]
POSITIVES = ["John Smith lives in Paris and works for Acme Corp. He moved there in May with his friend Peter.",
             "The capital of France is Paris.",
             "John Smith works for Acme Corp.",
             "Question: what colour is the sky? Answer: the sky is blue."]
NEGATIVES = ["Mary Jones visited Berlin with her friend Peter in May.",
             "The capital of Germany is Berlin.",
             "Anna moved from London to Rome to join Google.",
             "The cat sat on the mat."]


def make_fixture():
    os.makedirs(os.path.join(OUT, "1_Pooling"), exist_ok=True)
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(SRC, f), os.path.join(OUT, f))
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg["hidden_dropout_prob"] = 0.0
    cfg["attention_probs_dropout_prob"] = 0.0
    json.dump(cfg, open(os.path.join(OUT, "config.json"), "w"), indent=2)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    json.dump(modules, open(os.path.join(OUT, "modules.json"), "w"), indent=2)
    json.dump({"word_embedding_dimension": cfg["hidden_size"], "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(OUT, "1_Pooling", "config.json"), "w"), indent=2)
    json.dump({"max_seq_length": 24, "do_lower_case": False},
              open(os.path.join(OUT, "sentence_bert_config.json"), "w"), indent=2)


def main():
    print_versions("sentence-transformers")
    torch.manual_seed(0)
    make_fixture()
    model = SentenceTransformer(OUT, device="cpu")
    model.train()

    def embed(texts):
        feats = model.tokenize(texts)
        return model(feats)["sentence_embedding"]

    loss_fn = MultipleNegativesRankingLoss(model)  # scale 20, cos_sim
    labels = torch.arange(len(QUERIES))
    q, p, n = embed(QUERIES), embed(POSITIVES), embed(NEGATIVES)
    with_neg = loss_fn.compute_loss_from_embeddings([q, p, n], labels)
    without_neg = loss_fn.compute_loss_from_embeddings([q, p], labels)
    model.zero_grad()
    with_neg.backward()
    tensors = {"query_embeddings": q.detach().contiguous(), "positive_embeddings": p.detach().contiguous(),
               "negative_embeddings": n.detach().contiguous()}
    for name, prm in model[0].auto_model.named_parameters():
        if prm.grad is not None:
            tensors[f"grad.{name}"] = prm.grad.detach().contiguous()
    save_file(tensors, os.path.join(FIX, "mnrl_golden.safetensors"))
    golden = {"queries": QUERIES, "positives": POSITIVES, "negatives": NEGATIVES,
              "scale": loss_fn.scale, "loss_with_negatives": with_neg.item(),
              "loss_without_negatives": without_neg.item(),
              "versions": versions("sentence-transformers")}
    json.dump(golden, open(os.path.join(FIX, "mnrl_golden.json"), "w"), indent=2)
    print(f"loss with negatives {with_neg.item():.6f}, without {without_neg.item():.6f}, "
          f"{sum(k.startswith('grad.') for k in tensors)} gradients")


if __name__ == "__main__":
    main()
