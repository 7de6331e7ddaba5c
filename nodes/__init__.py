"""ComfyUI nodes (thin glue over semanticgen_core)."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
