#!/usr/bin/env python3
"""Tiny random models with real tokenizers, so the task plumbing runs in `cargo test` with no
pulled model.

Writes into tests/fixtures/:
  tiny_decoder/   a random LlamaForCausalLM (2 layers, hidden 32) with a byte-level BPE
                  tokenizer trained on CORPUS below: config.json, model.safetensors,
                  tokenizer.json, tokenizer_config.json (ChatML chat template, eos
                  `<|im_end|>`, pad `<|endoftext|>`), generation_config.json
  tiny_encoder/   a random BertModel (2 layers, hidden 32, with pooler) with a lower-casing
                  WordPiece tokenizer trained on the same text: config.json, model.safetensors
                  (bare BertModel names, `embeddings.word_embeddings.weight`, ...),
                  tokenizer.json, tokenizer_config.json, generation_config.json
  tiny_tokenizers.json   ids transformers' tokenizers give for a few texts (single and paired
                  for the encoder), the chat template rendered, and the versions used

Seeds are fixed; the tokenizers are trained from the text in this file, so reruns give the
same files (given the same package versions, which are printed and recorded).

  python scripts/golden/tiny_models.py
"""
import json, os
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoTokenizer, BertConfig, BertModel, GenerationConfig, LlamaConfig,
                          LlamaForCausalLM)
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")

# A few KB of text in the shape of the tests' data: reviews, facts with names and places,
# questions and answers, dialogue, arithmetic, a little Python and German.
CORPUS = """\
a wonderful, moving film with a great cast
the film is a charming, funny and moving ride
a dull and boring movie, the worst of the year
terrible acting and a bad script ruin the story
i loved every minute of this beautiful picture
an awful mess, i hated it and left early
the best movie i have seen in years, truly great
a tedious, lifeless film that goes nowhere
Review: a great film Sentiment: positive
Review: a bad film Sentiment: negative
John Smith lives in Paris and works for Acme Corp.
Mary Jones visited Berlin with her friend Peter in May.
The United Nations met in New York on Monday.
Anna moved from London to Rome to join Google.
Where does John live? John lives in Paris.
Who works for Acme? John Smith works for Acme Corp.
What is the capital of France? The capital of France is Paris.
What is the capital of Germany? The capital of Germany is Berlin.
Question: what colour is the sky? Answer: the sky is blue.
Context: The cat sat on the mat. Question: where did the cat sit? Answer: on the mat
A man is playing a guitar on stage. A person plays music.
A woman is sleeping. A woman is running in the park.
The premise entails the hypothesis. The logical relationship is: entailment, neutral, contradiction
#Person1#: Hello, how are you today? #Person2#: I am fine, thank you.
#Person1#: Shall we meet at noon? #Person2#: Yes, see you at the station.
Summary: two friends agree to meet at the station at noon.
Translate English to German: a dog runs in the park. Ein Hund rennt im Park.
Ein Mann spielt Gitarre. Eine Frau liest ein Buch. Zwei Kinder spielen im Garten.
Tom has 3 apples and buys 4 more. How many apples does he have? 3 + 4 = 7. #### 7
Sara reads 12 pages a day for 5 days. 12 * 5 = 60 pages. #### 60
There are 10 birds and 6 fly away. 10 - 6 = 4. #### 4
def add(a, b):
    \"\"\"Return the sum of a and b.\"\"\"
    return a + b

def is_even(n):
    return n % 2 == 0

assert add(2, 3) == 5
assert is_even(4)
for i in range(10):
    print(i, i * i)
The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9
User: hi there! Assistant: Hello! How can I help you?
System: You are a helpful assistant. User: what is two plus two? Assistant: four.
"""

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TEXTS = ["a wonderful, moving film", "John Smith lives in Paris.", "Zwei Kinder spielen 42 Spiele!",
         "def f(x):\n    return x * 2\n", "unseen wörds ünïcödé 😀"]


def lines():
    return CORPUS.splitlines() * 4


def bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines(), trainer=trainer)
    return tok


def wordpiece():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=400, min_frequency=1, special_tokens=specials,
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(lines(), trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def decoder():
    out = os.path.join(FIX, "tiny_decoder")
    os.makedirs(out, exist_ok=True)
    tok = bpe()
    tok.save(os.path.join(out, "tokenizer.json"))
    eos, pad = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "unk_token": None, "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE})
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                      tie_word_embeddings=False, bos_token_id=None, eos_token_id=eos,
                      pad_token_id=pad, attention_dropout=0.0)
    model = LlamaForCausalLM(cfg).float()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=None, eos_token_id=eos, pad_token_id=pad).save_pretrained(out)
    # transformers loads what we wrote, and renders the template as tasklm must.
    hf = AutoTokenizer.from_pretrained(out)
    chat = hf.apply_chat_template([{"role": "user", "content": "hi there!"},
                                   {"role": "assistant", "content": "Hello!"}], tokenize=False)
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>"
    print(f"tiny_decoder: vocab {cfg.vocab_size}, {sum(p.numel() for p in model.parameters())} parameters")
    return {"texts": [{"text": t, "ids": hf(t).input_ids} for t in TEXTS],
            "chat": {"messages": [["user", "hi there!"], ["assistant", "Hello!"]], "rendered": chat,
                     "ids": hf(chat).input_ids}}


def encoder():
    out = os.path.join(FIX, "tiny_encoder")
    os.makedirs(out, exist_ok=True)
    tok = wordpiece()
    tok.save(os.path.join(out, "tokenizer.json"))
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "tokenizer_class": "BertTokenizer", "model_max_length": 128, "do_lower_case": True,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "mask_token": "[MASK]", "clean_up_tokenization_spaces": True})
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=48, max_position_embeddings=128,
                     type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
                     pad_token_id=tok.token_to_id("[PAD]"))
    model = BertModel(cfg, add_pooling_layer=True).float()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(pad_token_id=cfg.pad_token_id).save_pretrained(out)
    hf = AutoTokenizer.from_pretrained(out)
    names = set(json.load(open(os.path.join(out, "config.json")))["architectures"])
    assert names == {"BertModel"}, names
    print(f"tiny_encoder: vocab {cfg.vocab_size}, {sum(p.numel() for p in model.parameters())} parameters")
    single = [{"text": t, "ids": hf(t).input_ids} for t in TEXTS]
    pair = hf("Where does John live?", "John Smith lives in Paris.")
    return {"texts": single, "pair": {"a": "Where does John live?", "b": "John Smith lives in Paris.",
                                      "ids": pair.input_ids, "token_type_ids": pair.token_type_ids}}


if __name__ == "__main__":
    golden = {"versions": print_versions("tokenizers", "safetensors"), "decoder": decoder(), "encoder": encoder()}
    write_json(os.path.join(FIX, "tiny_tokenizers.json"), golden)
    for d in ["tiny_decoder", "tiny_encoder"]:
        size = sum(os.path.getsize(os.path.join(FIX, d, f)) for f in os.listdir(os.path.join(FIX, d)))
        print(f"{d}: {size / 1024:.0f} KB")
