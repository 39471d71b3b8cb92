"""Ground-truth measurement helpers (activation memory of real Hugging Face models)."""
