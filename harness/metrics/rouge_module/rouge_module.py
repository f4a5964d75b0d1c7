"""ROUGE for Hugging Face `evaluate`, offline: the same numbers as pdl-bench's rouge metrics.

`evaluate.load("rouge")` fetches its script from the hub and fails offline; load this folder instead:

    import evaluate
    from harness.metrics.rouge_module import ROUGE_MODULE_PATH
    rouge = evaluate.load(ROUGE_MODULE_PATH)
    rouge.compute(predictions=[...], references=[...])  # {"rouge1": mean F1 x 100, ...}

Unlike the hub module, stemming is on and scores are F1 x 100 (mean over examples).
"""

import datasets
import evaluate

from harness.metrics.rouge import ROUGE_TYPES, rouge_scores


class RougeModule(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="ROUGE-1/2/L/Lsum F1 x 100 with rouge-score, Porter stemming, offline sentence splitting.",
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description="predictions: list of str; references: list of str (one per prediction).",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, rouge_types=ROUGE_TYPES, splitter="auto", workers=1,
                 use_aggregator=True):
        scores = rouge_scores(list(predictions), list(references), types=tuple(rouge_types),
                              splitter=splitter, workers=workers)
        if use_aggregator:
            return {t: float(v.mean()) for t, v in scores.items()}
        return {t: v.tolist() for t, v in scores.items()}
