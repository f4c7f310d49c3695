#!/usr/bin/env python3
"""Golden values for tasklm's SQuAD v1.1 EM/F1, from the official evaluate-v1.1.py code
(reproduced below verbatim in its metric functions): predictions for the first 300 questions
of ../shared/data/squad/train.json, drawn with a fixed seed as the exact answer, a shifted or
partial span, the answer with articles/punctuation/case changed, or another question's answer.

Writes tests/fixtures/squad_golden.json. Usage: python scripts/golden/squad_metric.py
"""
import json, os, random, re, string, sys
from collections import Counter
from versions import print_versions

print_versions()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- official evaluate-v1.1.py ---
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {'exact_match': exact_match, 'f1': f1}
# --- end of the official code ---


rng = random.Random(0)
data = json.load(open(os.path.join(ROOT, "..", "shared", "data", "squad", "train.json")))["data"]
qas = [(p["context"], qa) for a in data for p in a["paragraphs"] for qa in p["qas"]][:300]
preds, rows = {}, []
for ctx, qa in qas:
    ans = qa["answers"][0]
    text, start = ans["text"], ans["answer_start"]
    r = rng.random()
    if r < 0.3:
        pred = text
    elif r < 0.5:
        pred = ctx[max(0, start - 10):start + len(text) - 3]
    elif r < 0.65:
        pred = "The " + text.upper() + "!"
    elif r < 0.8:
        pred = " ".join(text.split()[: max(1, len(text.split()) // 2)])
    else:
        pred = rng.choice(qas)[1]["answers"][0]["text"]
    preds[qa["id"]] = pred
    truths = [a["text"] for a in qa["answers"]]
    rows.append({"prediction": pred, "references": truths,
                 "em": float(metric_max_over_ground_truths(exact_match_score, pred, truths)),
                 "f1": float(metric_max_over_ground_truths(f1_score, pred, truths))})
sub = [{"paragraphs": [{"qas": [qa for _, qa in qas]}]}]
total = evaluate(sub, preds)
json.dump({"rows": rows, "exact_match": total["exact_match"], "f1": total["f1"]},
          open(os.path.join(ROOT, "tests", "fixtures", "squad_golden.json"), "w"))
print(total)
