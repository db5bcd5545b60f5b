"""Wire types shared by the daemon and the SDK.

These are the shapes that cross HTTP. They follow OpenAI's objects field for field where OpenAI has one
(files, fine-tuning jobs, events, checkpoints, chat completions), so the official `openai` SDK parses them;
honed's own options travel in a namespaced `honed` object (the SDK's `extra_body`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


# --------------------------------------------------------------------------------------------- errors


class ErrorBody(msgspec.Struct):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct):
    error: ErrorBody


# ---------------------------------------------------------------------------------------------- files


class FileObject(msgspec.Struct):
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: str = "file"
    status: str = "processed"
    status_details: str | None = None
    expires_at: int | None = None
    format: str | None = None
    """honed: the data format the file was read as (chat, alpaca, csv, text, ...)."""
    examples: int | None = None
    """honed: how many examples (or eval cases) it holds."""


class FileList(msgspec.Struct):
    data: list[FileObject]
    object: str = "list"
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: str = "file"


# ----------------------------------------------------------------------------------------------- data

DataFormatName = Literal["auto", "chat", "prompt_completion", "alpaca", "sharegpt", "csv", "tsv", "text",
                         "markdown", "chatml", "transcript"]


class DataFormat(msgspec.Struct, forbid_unknown_fields=True):
    """How to read a data file. Everything is detected from the file unless given here."""

    format: DataFormatName = "auto"
    columns: dict[str, str] | None = None
    """CSV/TSV: which column holds what: keys prompt, response (required), label, system; values are the
    file's column names, e.g. {"prompt": "question", "response": "answer", "label": "intent"}."""
    chunk_tokens: int = 1024
    """Plain text: the length of each training chunk in tokens."""


# ---------------------------------------------------------------------------------------- fine-tuning


class Hyperparameters(msgspec.Struct):
    """OpenAI's hyperparameters: each may be "auto" on create; the job reports the resolved values."""

    n_epochs: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    learning_rate_multiplier: float | Literal["auto"] = "auto"


class SupervisedMethod(msgspec.Struct):
    hyperparameters: Hyperparameters | None = None


class Method(msgspec.Struct):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethod | None = None


class EvalCase(msgspec.Struct, forbid_unknown_fields=True):
    """One evaluation example: what the model is asked and what a good answer is."""

    prompt: str | None = None
    """A user message (used when `messages` is not given)."""
    messages: list[dict[str, str]] | None = None
    reference: str | None = None
    """The reference answer (exact_match, rouge_l, chrf, bleu) or label (macro_f1)."""
    keywords: list[str] | None = None
    """Facts a good answer must state (contains_all)."""
    fields: dict[str, str] | None = None
    """Values for the suite's `prompt_template` placeholders besides `{prompt}`."""


class EvalSuite(msgspec.Struct, forbid_unknown_fields=True):
    """A small declared evaluation: cases, the metrics to compute, and how to generate."""

    name: str
    cases: list[EvalCase] = msgspec.field(default_factory=list)
    dataset: str | None = None
    """More cases, one EvalCase per JSONL line: an uploaded file id (the daemon copies its cases into the job,
    so deleting the file later changes nothing). `hone` also takes a local path, relative to the suite file."""
    metrics: list[str] = msgspec.field(default_factory=lambda: ["exact_match"])
    system: str | None = None
    """A system prompt put before every case."""
    prompt_template: str | None = None
    """Wraps each case's prompt, e.g. "Classify the ticket: {prompt}"; other placeholders come from `fields`."""
    max_tokens: int = 64
    """Greedy generation stops after this many tokens (or at the end-of-turn token)."""
    stop_pattern: str | None = None
    """A regex: an answer ends as soon as it matches (cut at the match's end), e.g. a complete ```python block,
    so a model that goes on explaining after its code costs no extra decoding and no extra text to score."""
    json_schema: dict[str, Any] | None = None
    """For the json_schema metric."""
    judge: JudgeSpec | None = None
    """When two models are compared: ask an LLM judge which answer is better, in both orders."""
    inspect_case: int = 0
    """The case whose reference gets the per-token probability heatmap and attention view in the report."""
    attention_layer: int = -1
    """Which layer's attention the report draws (negative counts from the last)."""
    attention_head: int = 0
    label_pattern: str | None = None
    """A regex whose first group is the label that exact_match and macro_f1 compare, searched in each answer and
    reference (e.g. "Intent: ([a-z_]+)" scores the label a longer answer starts with); no match is the empty
    label, so a wrong one. None: the whole texts are compared."""
    style_model: str | StyleModel | None = None
    """The style_classifier metric's classifier: its weights, or (in a suite file) the path of a JSON file of
    them relative to the suite file, which `hone` reads in before sending the suite."""


class StyleModel(msgspec.Struct, forbid_unknown_fields=True):
    """A logistic regression over all-MiniLM-L6-v2 sentence embeddings: P(house style) = sigmoid(w.x + b)."""

    weights: list[float]
    """One weight per embedding dimension (384)."""
    bias: float
    embedding: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    """The embedding the weights were fitted on; the only one honed computes."""


class JudgeSpec(msgspec.Struct, forbid_unknown_fields=True):
    """LLM-as-judge: pairwise preference between two answers, asked twice with the order swapped."""

    model: str
    """The judge model's name at the endpoint (for honed itself: any model it serves)."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint ending in /v1; None means this honed daemon."""
    api_key_env: str | None = None
    """The name of an environment variable of the daemon that holds the endpoint's API key (specs are stored,
    so keys are not put in them)."""
    criteria: str = "Which answer is more helpful and correct, and closer to the reference answer if one is given?"
    max_tokens: int = 16
    cases: int | None = None
    """Judge only the suite's first this many cases (None: all). Each case is two prompts of the question, the
    reference and both answers to read: a 135M judge on a 2-core CPU took 6.4 minutes for 200 cases."""


class EarlyStopping(msgspec.Struct, forbid_unknown_fields=True):
    """Stop training when the validation metric has not improved for `patience` validations in a row; the job's
    model is then the best validated checkpoint, not the last."""

    metric: str = "valid_loss"
    """valid_loss (needs validation data), or one of the eval suite's metrics scored on its first
    eval_live_cases cases at each validation point (never the whole test split)."""
    patience: int = 3
    """Validations without improvement before training stops."""
    min_delta: float = 0.0
    """An improvement smaller than this does not count."""


class HonedOptions(msgspec.Struct, forbid_unknown_fields=True):
    """honed's own job options (sent as `extra_body={"honed": {...}}` from the openai SDK)."""

    adapter: Literal["lora", "qlora", "full"] | None = None
    """What is trained: a LoRA adapter on frozen base weights, a LoRA adapter on a 4-bit quantised base
    (QLoRA: a quarter of the base's memory), or every weight. None: honed picks LoRA, or QLoRA where the base
    would crowd this machine's memory (never full: that is a choice to make, not a default)."""
    lora_rank: int = 16
    lora_alpha: float | None = None
    """Scaling numerator; None means 2 x rank."""
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    """Module names for LoRA; None means every linear layer of the transformer blocks."""
    learning_rate: float | None = None
    """An absolute learning rate; overrides OpenAI's learning_rate_multiplier when set."""
    max_steps: int | None = None
    """Stop after this many optimizer steps even if epochs remain."""
    max_minutes: float | None = None
    """Stop training after this many minutes (counted from the first step; a resumed job counts afresh): the
    step reached is validated and becomes the model, as if it were the last."""
    checkpoint_interval: int = 50
    """Save a resumable checkpoint every this many steps (and always at the end)."""
    max_seq_len: int | None = None
    """Longer examples are cut to this many tokens (the cut is reported as a warning event). None: long enough
    for every training example, within the model's context and this machine's memory."""
    gradient_accumulation: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    """Split each batch into this many micro-batches (same update, less activation memory). None: by memory."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass instead of keeping them (slower, far less memory). None: only
    when memory demands it."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Training compute precision (weights stay fp32 where the device trains in fp32). auto: by device."""
    packing: bool = False
    """Pack short examples together into rows of max_seq_len tokens: far less padding, so each step trains
    more tokens (fewer, fuller steps per epoch); each example still attends only to itself."""
    warmup_ratio: float = 0.05
    weight_decay: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    engine: Literal["auto", "torch", "mlx"] = "auto"
    """auto: MLX on Apple Silicon with Metal, PyTorch elsewhere."""
    eval: EvalSuite | None = None
    """Run this suite on the base model before training and on the tuned model after (greedy decoding)."""
    eval_interval: int | None = None
    """Validate every this many steps (validation loss and a quick task metric); None: at each checkpoint."""
    eval_live_cases: int = 4
    """How many of the suite's cases the quick task metric at each validation point scores (0: loss only)."""
    guards: list[EvalSuite] = msgspec.field(default_factory=list)
    """Suites the tuned model must not get worse at (general knowledge, formats); measured before and after."""
    regression_threshold: float = 0.05
    """A guard metric falling by more than this (absolute; perplexity: relative) raises a regression warning."""
    estimate: bool = True
    """Measure the time and memory estimate before training (a probe of a few real steps the first time a kind of
    job runs on this machine, up to a minute); false starts training at once, without an estimate."""
    early_stopping: EarlyStopping | None = None
    """Stop when validation stops improving and keep the best checkpoint as the model (None: train to the end,
    the last step is the model)."""
    divergence_factor: float = 10.0
    """Fail the job when the training loss (a 4-step mean) rises above this many times its lowest and above where
    it started, or becomes NaN: a run that diverged wastes the rest of its time. 0 turns the ratio check off (NaN
    still fails)."""


class FineTuneCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/fine_tuning/jobs."""

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    honed: HonedOptions | None = None


class JobError(msgspec.Struct):
    code: str
    message: str
    param: str | None = None


class ResolvedHyperparameters(msgspec.Struct):
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


class ResolvedMethod(msgspec.Struct):
    type: str
    supervised: dict[str, Any]


class FineTuningJob(msgspec.Struct):
    id: str
    created_at: int
    model: str
    status: str
    training_file: str
    hyperparameters: ResolvedHyperparameters
    seed: int
    object: str = "fine_tuning.job"
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    error: JobError | None = None
    organization_id: str = "honed-local"
    result_files: list[str] = []
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: ResolvedMethod | None = None
    user_provided_suffix: str | None = None
    honed: dict[str, Any] | None = None


class FineTuningJobList(msgspec.Struct):
    data: list[FineTuningJob]
    has_more: bool
    object: str = "list"


class JobEvent(msgspec.Struct):
    """One thing a job told the world: OpenAI's event shape plus honed's `seq` (the SSE id) and `kind`.

    `type` is OpenAI's ("metrics" or "message"); `kind` is honed's finer one: status, metrics, eval, checkpoint,
    warning or log (also the SSE `event:` name).
    """

    id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None
    seq: int
    kind: str
    object: str = "fine_tuning.job.event"
    job_id: str | None = None
    timestamp: float | None = None
    """When the worker wrote it (UNIX time with sub-second precision; created_at is whole seconds)."""


class JobEventList(msgspec.Struct):
    data: list[JobEvent]
    has_more: bool
    object: str = "list"


class CheckpointMetrics(msgspec.Struct):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class JobCheckpoint(msgspec.Struct):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int
    object: str = "fine_tuning.job.checkpoint"


class JobCheckpointList(msgspec.Struct):
    data: list[JobCheckpoint]
    has_more: bool
    object: str = "list"
    first_id: str | None = None
    last_id: str | None = None


# ---------------------------------------------------------------------------------------------- chat


class ChatMessage(msgspec.Struct, omit_defaults=True):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatCompletionCreate(msgspec.Struct):
    model: str
    messages: list[ChatMessage]
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct):
    content: str | None
    role: str = "assistant"
    refusal: str | None = None


class ChatChoice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: dict[str, Any] | None = None


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    object: str = "chat.completion"
    system_fingerprint: str | None = None


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: Usage | None = None


# -------------------------------------------------------------------------------------------- models


class ModelObject(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelObject]
    object: str = "list"


# ------------------------------------------------------------------------------------- completions


class CompletionCreate(msgspec.Struct):
    model: str
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    echo: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    suffix: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class TextCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    object: str = "text_completion"
    usage: Usage | None = None
    system_fingerprint: str | None = None


# ------------------------------------------------------------------------------------------- evals


class EvalCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/evals: a suite and one model to measure, or two to compare."""

    suite: EvalSuite
    models: list[str]


class EvalRun(msgspec.Struct):
    id: str
    created_at: int
    status: str
    suite: str
    models: list[str]
    object: str = "eval.run"
    finished_at: int | None = None
    results: dict[str, Any] | None = None
    """Per model: each metric's value and 95% CI, and the model's answers."""
    comparison: dict[str, Any] | None = None
    """With two models: per metric, the paired-bootstrap difference (second minus first)."""
    judge: dict[str, Any] | None = None
    """With two models and a suite judge: the judge's win rate of the second model, with its 95% CI."""
    error: JobError | None = None


class EvalResult(msgspec.Struct):
    """One stored metric value: a job's baseline, validation or final measurement, or an eval run's model."""

    job_id: str
    phase: str
    """baseline, validation, final (fine-tuning jobs) or model (/v1/evals runs)."""
    suite: str
    metric: str
    value: float | None
    low: float | None = None
    high: float | None = None
    model: str | None = None
    step: int | None = None
    event_id: str | None = None
    object: str = "eval.result"


class EvalResultList(msgspec.Struct):
    data: list[EvalResult]
    object: str = "list"


# ------------------------------------------------------------------------------------- dataset report


class DatasetFinding(msgspec.Struct):
    """One thing the data check found: how often, where to look, and what to do about it."""

    code: str
    """Stable identifier, e.g. exact_duplicates, over_max_seq_len, validation_leakage, pii_email."""
    severity: Literal["error", "warning", "info"]
    """error: records honed cannot train on as they are; warning: trains, but likely hurts; info: worth knowing."""
    message: str
    count: int
    """Exact, however many lines are listed."""
    lines: list[int]
    """The first lines (1-based, in file order) where it was found; at most the report's sample limit."""
    suggestion: str
    groups: list[list[int]] | None = None
    """Duplicates and leakage: lines that hold the same (or nearly the same) example, first occurrence first;
    for leakage [validation line, training line]. At most the sample limit of groups, each cut to that limit."""


class LengthStats(msgspec.Struct):
    """Tokens per example under the model's tokenizer and chat template (what training sees before cutting)."""

    min: int
    p50: int
    p90: int
    p99: int
    max: int
    mean: float
    histogram: list[int]
    """Examples per bin; bin i holds lengths in [bin_edges[i], bin_edges[i + 1])."""
    bin_edges: list[int]
    over_max: int
    """Examples longer than max_seq_len: training cuts them."""
    max_seq_len: int


class DatasetReport(msgspec.Struct):
    """What is wrong with a training file (and its validation file) before any training, and what to do."""

    examples: int
    records_with_problems: int
    """Records the reader could not turn into an example, plus examples whose turns break the role rules."""
    conversations_with_system: int
    mean_turns: float
    """Mean user and assistant messages per chat example (system messages not counted)."""
    labels: dict[str, int] | None
    """Examples per class label, when the data has labels."""
    tokens: LengthStats | None
    """None when no tokenizer was available."""
    findings: list[DatasetFinding]
    recommendations: list[str]
    """Plain sentences, most important first."""
    validation_examples: int | None
    object: str = "dataset.report"


class DatasetAnalyzeRequest(msgspec.Struct, forbid_unknown_fields=True):
    file: str
    """The training file's id."""
    validation_file: str | None = None
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    """Whose tokenizer and chat template measure the lengths."""
    max_seq_len: int = 512
    format: DataFormat | None = None
    validation_format: DataFormat | None = None


class DatasetSplitRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/datasets/split: one stored file in, train/validation/test files out."""

    file: str
    validation: float = 0.1
    test: float = 0.0
    seed: int = 0
    stratify: Literal["auto", "label", "length", "none"] = "auto"
    """auto: by label when the examples have labels, else by length bucket."""
    augment: float = 0.0
    """Add this many synthetic variants per training example (0: none); never in validation or test."""


class DatasetSplit(msgspec.Struct):
    train: FileObject
    validation: FileObject | None
    test: FileObject | None
    strata: str
    """What the split was stratified by: label, length or none."""
    synthetic: int = 0
    """Augmented examples added to the training file."""
    object: str = "dataset.split"


class PreviewExample(msgspec.Struct):
    line: int
    messages: list[dict[str, str]] | None = None
    text: str | None = None
    label: str | None = None
    problems: list[str] = msgspec.field(default_factory=list)
    """What is wrong with this record (unreadable, or turns that cannot train)."""


class DatasetPreview(msgspec.Struct):
    data: list[PreviewExample]
    offset: int
    has_more: bool
    object: str = "list"


# ---------------------------------------------------------------------------------------- preferences


class PreferenceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A person's vote between two answers to one prompt (the studio's A/B chat): preference data."""

    prompt: str
    model_a: str
    model_b: str
    answer_a: str
    answer_b: str
    winner: Literal["a", "b", "tie"]
    system: str | None = None


class Preference(msgspec.Struct):
    id: str
    created_at: int
    prompt: str
    model_a: str
    model_b: str
    answer_a: str
    answer_b: str
    winner: str
    system: str | None = None
    object: str = "preference"


class PreferenceList(msgspec.Struct):
    data: list[Preference]
    object: str = "list"


# ------------------------------------------------------------------------------- hardware and planning


class Hardware(msgspec.Struct):
    """GET /v1/hardware: what this machine trains on."""

    object: Literal["hardware"]
    device: Literal["cuda", "mps", "metal", "cpu"]
    """Where training runs by default: an NVIDIA GPU, Apple's GPU through PyTorch (mps) or MLX (metal), or the CPU."""
    device_name: str
    platform: str
    cpu_cores: int
    """Cores this process may use (its CPU affinity)."""
    memory_bytes: int
    """Physical RAM."""
    memory_available_bytes: int | None
    unified_memory: bool
    """Apple Silicon: the GPU shares the RAM, so memory_bytes is also the accelerator's."""
    accelerator_memory_bytes: int | None
    """A discrete GPU's own memory (VRAM)."""
    bf16: bool
    fp16: bool
    engines: list[str]
    """Engines installed here; default_engine is what `engine: auto` picks."""
    default_engine: str


class PlanChoice(msgspec.Struct):
    """One setting honed chose for a job, and why."""

    field: str
    value: Any
    reason: str


class EstimateProbe(msgspec.Struct):
    """The short measured run an estimate is calibrated on (cached per machine, model and shape)."""

    cached: bool
    seconds: float
    """What running the probe cost (0 when it came from the cache)."""
    step_seconds_fixed: float
    """Per optimizer micro-step time that does not depend on tokens (a in a + b x tokens)."""
    step_seconds_per_token: float
    forward_seconds_per_token: float
    decode_seconds_per_step: float
    """One step of greedy decoding a batch of evaluation answers, the part paid whatever the batch's rows."""
    load_seconds: float
    peak_memory_bytes: int
    device_peak_memory_bytes: int | None = None
    decode_seconds_per_row: float = 0.0
    """What each row of the batch adds to a decoding step (a + b x rows, with decode_seconds_per_step as a)."""
    kv_bytes_per_token: int = 0
    """One token of one answer in the KV cache: how many answers a batch can hold."""


class Estimate(msgspec.Struct):
    """POST /v1/estimate: what a job spec will cost on this machine, before it starts."""

    object: Literal["estimate"]
    model: str
    engine: str
    device: str
    steps: int
    micro_steps: int
    trained_tokens: int
    """Tokens the steps will process (padding included: what the machine computes)."""
    peak_memory_bytes: int
    device_peak_memory_bytes: int | None
    train_seconds: float
    """Training steps and the validation passes between them."""
    eval_seconds: float
    """Baseline and final evaluation (generation), from the measured decode speed."""
    total_seconds: float
    choices: list[PlanChoice]
    probe: EstimateProbe
    warnings: list[str] = msgspec.field(default_factory=list)


class Suggestions(msgspec.Struct):
    """POST /v1/fine_tuning/suggest: the hyperparameters honed suggests for a job body, each with its reason, and
    the settings it would choose for this machine; `hyperparameters` and `honed` drop into a create request."""

    object: Literal["fine_tuning.suggestions"]
    model: str
    parameters: int
    examples: int
    mean_tokens: float
    longest_tokens: int
    choices: list[PlanChoice]
    hyperparameters: dict[str, Any]
    honed: dict[str, Any]


# ------------------------------------------------------------------------------------------------ recipes


class RecipeInfo(msgspec.Struct):
    """A bundled recipe: a ready-made task with its data, settings and eval suite (GET /v1/recipes)."""

    name: str
    description: str
    primary_metric: str
    base_model: str
    recommended_models: list[str]
    method: str
    hyperparameters: dict[str, Any]
    honed: dict[str, Any]
    train_examples: int
    test_cases: int
    object: Literal["recipe"] = "recipe"


class RecipeList(msgspec.Struct):
    data: list[RecipeInfo]
    object: Literal["list"] = "list"


class RecipePrepareRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/recipes/{name}/prepare: store a recipe's data as files and return the job that runs it."""

    model: str | None = None
    """The base model to tune (default: the recipe's)."""
    subset: int | None = None
    """Only the first N training examples, N // 2 validation examples and test cases (a quick try)."""


class PreparedRecipe(msgspec.Struct):
    """A recipe's data, stored, and the POST /v1/fine_tuning/jobs body that runs it (change it at will)."""

    recipe: RecipeInfo
    training_file: FileObject
    validation_file: FileObject | None
    job: dict[str, Any]
    object: Literal["recipe.prepared"] = "recipe.prepared"


# ------------------------------------------------------------------------------------------------ deploying


class ModelAlias(msgspec.Struct):
    """A stable name that serves whichever model it points at now (GET/PUT /v1/aliases/{name})."""

    name: str
    model: str
    """What requests for `name` are served by now."""
    created_at: int
    """When it was pointed there."""
    history: list[str]
    """Earlier models, most recent first: POST /v1/aliases/{name}/rollback goes back to the first."""
    object: Literal["model.alias"] = "model.alias"


class ModelAliasList(msgspec.Struct):
    data: list[ModelAlias]
    object: Literal["list"] = "list"


class ModelAliasUpdate(msgspec.Struct, forbid_unknown_fields=True):
    model: str


ExportFormat = Literal["adapter", "merged", "onnx", "gguf", "gguf-lora"]


class ExportCreate(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/exports (or POST /v1/models/{model}/export): write a fine-tuned model out in a format."""

    model: str = ""
    """A fine-tuned model, a checkpoint, an alias, or a fine-tuning job id (filled from the path on
    /v1/models/{model}/export)."""
    format: ExportFormat = "adapter"
    """adapter: the PEFT adapter directory; merged: the LoRA merged into its base (a plain transformers model);
    onnx: the merged model as ONNX, checked against torch with onnxruntime; gguf: the merged model for
    llama.cpp (Llama-architecture models), read back and checked against torch; gguf-lora: the base model and
    the LoRA as two GGUF files. A GGUF export is served by llama.cpp under its export id."""
    quantization: Literal["f16", "q8_0", "q4_k_m"] | None = None
    """gguf and gguf-lora: f16 (default), q8_0, or q4_k_m (quantised by llama.cpp)."""
    name: str | None = None
    """A folder name under HONED_HOME/exports (default: the export's id)."""
    output_dir: str | None = None
    """An absolute directory of your choosing instead (created; must be empty if it exists)."""


class ExportedFile(msgspec.Struct):
    name: str
    bytes: int


class ExportJob(msgspec.Struct):
    id: str
    model: str
    format: str
    status: str
    created_at: int
    output_dir: str
    finished_at: int | None = None
    files: list[ExportedFile] = msgspec.field(default_factory=list)
    checks: dict[str, Any] = msgspec.field(default_factory=dict)
    """What was verified after writing (e.g. onnxruntime's logits against torch's)."""
    error: JobError | None = None
    object: Literal["export"] = "export"


class ExportJobList(msgspec.Struct):
    data: list[ExportJob]
    object: Literal["list"] = "list"
    has_more: bool = False


# ------------------------------------------------------------------------------------------ searches


class SearchRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One searched hyperparameter: a range (`low`..`high`, sampled on a log scale when `log`) or `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[float | int | str] | None = None


class SearchCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/fine_tuning/searches: a fine-tuning job to vary, the space to vary it over, and how
    many trials to run. Each trial is a child fine-tuning job on the queue."""

    job: FineTuneCreate
    space: dict[str, SearchRange]
    n_trials: int = 8
    trial_max_steps: int | None = None
    """Each trial's budget in optimizer steps (honed.max_steps of the child job)."""
    trial_max_minutes: float | None = None
    """Each trial's budget in minutes of training: a trial out of time ends there, as finished."""
    metric: str = "valid_loss"
    """What a trial is judged on: the validation loss, or a metric of the job's eval suite measured at each
    validation point (honed.eval with eval_live_cases > 0)."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = 2
    """Trials that run to the end before pruning starts (the median needs something to compare with)."""
    seed: int = 0
    enqueue: list[dict[str, float | int | str]] = msgspec.field(default_factory=list)
    """Parameter sets to try first, in order, before the sampler proposes any (Optuna's enqueue_trial)."""


class SearchTrial(msgspec.Struct):
    number: int
    job_id: str | None
    state: Literal["waiting", "running", "complete", "pruned", "failed"]
    params: dict[str, float | int | str]
    value: float | None = None
    """The trial's metric at its last validation point (its final model)."""
    step: int | None = None
    """The step of that value; for a pruned trial, the step it was pruned at."""
    fine_tuned_model: str | None = None
    reason: str | None = None


class Search(msgspec.Struct):
    object: Literal["fine_tuning.search"]
    id: str
    created_at: int
    status: JobStatus
    model: str
    metric: str
    direction: Literal["minimize", "maximize"]
    n_trials: int
    space: dict[str, SearchRange]
    trials: list[SearchTrial]
    best_trial: SearchTrial | None = None
    importance: dict[str, float] | None = None
    """Each parameter's share of the metric's variance over the finished trials (Optuna's fANOVA)."""
    finished_at: int | None = None
    error: JobError | None = None


class SearchList(msgspec.Struct):
    object: Literal["list"]
    data: list[Search]
    has_more: bool
