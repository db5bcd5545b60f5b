"""Writing a fine-tuned model out: as its PEFT adapter, merged into its base, or as ONNX, with a model card."""
