"""Block offloading and block compilation: run a DiT whose weights do not all fit the device.

`BlockOffloader` keeps the first `blocks_on_device` transformer blocks (and everything outside the blocks) on the
device and streams the others from CPU memory (pinned, so copies are asynchronous): a forward pre-hook swaps a
streamed block's parameters to device copies just before it runs, a forward hook swaps them back to the CPU
tensors, and the next streamed blocks are copied ahead on a side stream while the current one computes (cyclically:
the last block prefetches the first streamed block of the next step). Device memory for weights is then
(resident parts) + (1 + prefetch) streamed blocks. The hooks are plain `nn.Module` hooks: `forward` is untouched,
parameter names and the state dict are unchanged.

On a CPU device the same code runs and the swaps are no-ops (a CPU tensor moved to the CPU is itself), so CPU tests
exercise the hooks, the prefetch order and the bookkeeping; the transfer itself needs CUDA.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _tensors(module: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """(owner, name, tensor) of every parameter and buffer of `module`, in a fixed order."""
    out = []
    for owner in module.modules():
        for name, t in list(owner._parameters.items()) + list(owner._buffers.items()):
            if t is not None:
                out.append((owner, name, t))
    return out


class BlockOffloader:
    """Stream the transformer blocks past the first `blocks_on_device` from CPU memory during each forward."""

    def __init__(self, model: nn.Module, device: str | torch.device, blocks_on_device: int, prefetch: int = 1):
        blocks = model.blocks
        if not 0 <= blocks_on_device <= len(blocks):
            raise ValueError(f"blocks_on_device={blocks_on_device}: must be between 0 and {len(blocks)} (the blocks)")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.model, self.device = model, torch.device(device)
        self.streamed = list(range(blocks_on_device, len(blocks)))
        self.prefetch = min(prefetch, len(self.streamed) - 1) if self.streamed else 0
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.host: dict[int, list[torch.Tensor]] = {}  # CPU copies of the streamed blocks' tensors
        self.loaded: dict[int, tuple[list[torch.Tensor], object]] = {}  # block -> (device tensors, ready event)
        self.stats = {"loads": 0, "bytes": 0, "order": []}  # transfers made (order: block indices, for tests)
        self.handles = []
        streamed = {id(blocks[i]) for i in self.streamed}
        resident = [m for m in model.children() if m is not blocks] + [b for b in blocks if id(b) not in streamed]
        for m in resident:
            m.to(self.device)
        for p in model._parameters.values():  # parameters owned by the top-level module itself
            if p is not None:
                p.data = p.data.to(self.device)
        for i in self.streamed:
            host = []
            for owner, name, t in _tensors(blocks[i]):
                cpu = t.detach().to("cpu")
                cpu = cpu.pin_memory() if self.cuda else cpu
                getattr(owner, name).data = cpu
                host.append(cpu)
            self.host[i] = host
            self.handles.append(blocks[i].register_forward_pre_hook(self._make_pre(i)))
            self.handles.append(blocks[i].register_forward_hook(self._make_post(i)))

    # --------------------------------------------------------------------------------------------------------
    # Transfers
    # --------------------------------------------------------------------------------------------------------

    def _load(self, i: int) -> None:
        """Start copying streamed block i to the device (on the side stream when CUDA)."""
        if i in self.loaded:
            return
        self.stats["loads"] += 1
        self.stats["order"].append(i)
        self.stats["bytes"] += sum(t.numel() * t.element_size() for t in self.host[i])
        if self.cuda:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                tensors = [t.to(self.device, non_blocking=True) for t in self.host[i]]
                event = torch.cuda.Event()
                event.record(self.stream)
        else:
            tensors, event = [t.to(self.device) for t in self.host[i]], None
        self.loaded[i] = (tensors, event)

    def _next(self, i: int, ahead: int) -> int:
        """The streamed block `ahead` positions after block i, wrapping to the next forward's first ones."""
        k = self.streamed.index(i)
        return self.streamed[(k + ahead) % len(self.streamed)]

    def _make_pre(self, i: int):
        def hook(module, args):
            if torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
                raise RuntimeError("block offloading is for sampling: run under torch.no_grad() or freeze the model")
            self._load(i)
            tensors, event = self.loaded[i]
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
            for (owner, name, _), t in zip(_tensors(module), tensors):
                getattr(owner, name).data = t
            for ahead in range(1, self.prefetch + 1):  # overlap the next copies with this block's compute
                self._load(self._next(i, ahead))

        return hook

    def _make_post(self, i: int):
        def hook(module, args, output):
            tensors, _ = self.loaded.pop(i)
            for (owner, name, _), host in zip(_tensors(module), self.host[i]):
                getattr(owner, name).data = host
            if self.cuda:  # the allocator may reuse these only after the compute stream is done with them
                for t in tensors:
                    t.record_stream(torch.cuda.current_stream(self.device))

        return hook

    # --------------------------------------------------------------------------------------------------------
    # Bookkeeping
    # --------------------------------------------------------------------------------------------------------

    def resident_bytes(self) -> int:
        """Bytes of parameters and buffers on the device right now (outside a forward: the resident parts)."""
        seen, total = set(), 0
        for _, _, t in _tensors(self.model):
            if t.device == self.device and id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total

    def streamed_bytes(self) -> int:
        """Bytes of the streamed blocks (CPU memory; copied to the device once per forward)."""
        return sum(t.numel() * t.element_size() for host in self.host.values() for t in host)

    def remove(self, restore: bool = True) -> None:
        """Detach the hooks; with restore, move the streamed blocks to the device (the model runs normally again)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.loaded.clear()
        if restore:
            for i in self.streamed:
                self.model.blocks[i].to(self.device)


def attach_offload(model: nn.Module, device, blocks_on_device: int | None, prefetch: int = 1):
    """Offload `model`'s blocks past the first `blocks_on_device` (None: all on the device, no offloading).

    Returns the offloader (kept on the model as `model.offloader`, so `move` and the nodes find it) or None.
    Apply LoRA before offloading: adapters attached later would not be streamed.
    """
    old = getattr(model, "offloader", None)
    if old is not None:
        old.remove(restore=blocks_on_device is None)
    model.offloader = None
    if blocks_on_device is None or blocks_on_device >= len(model.blocks):
        model.to(device)
        return None
    model.offloader = BlockOffloader(model, device, blocks_on_device, prefetch)
    return model.offloader


def device_bytes(model: nn.Module) -> int:
    """Bytes of weights `model` needs on its device while running: all of them, or for an offloaded model the
    resident parts plus (1 + prefetch) of its largest streamed blocks."""
    total = sum(t.numel() * t.element_size() for _, _, t in _tensors(model))
    off = getattr(model, "offloader", None)
    if off is None:
        return total
    sizes = sorted((sum(t.numel() * t.element_size() for t in host) for host in off.host.values()), reverse=True)
    return total - sum(sizes) + sum(sizes[: 1 + off.prefetch])


def move(model: nn.Module, device) -> nn.Module:
    """model.to(device); an offloaded model moves only its resident parts (the streamed blocks stay in CPU memory
    and keep streaming to the new device)."""
    off = getattr(model, "offloader", None)
    if off is None:
        return model.to(device)
    attach_offload(model, device, len(model.blocks) - len(off.streamed), off.prefetch)
    return model


# ----------------------------------------------------------------------------------------------------------------
# torch.compile
# ----------------------------------------------------------------------------------------------------------------


def compile_blocks(model: nn.Module, **compile_kwargs) -> int:
    """torch.compile each transformer block in place (`nn.Module.compile`: names and state dict unchanged).

    Blocks streamed by a BlockOffloader compile their sub-layers instead, so the offload hooks stay outside the
    compiled graph. Call after LoRA and offloading are set up. Returns the number of modules compiled.
    """
    off = getattr(model, "offloader", None)
    streamed = set(off.streamed) if off is not None else set()
    n = 0
    for i, block in enumerate(model.blocks):
        targets = [block] if i not in streamed else [block.self_attn, block.cross_attn, block.ffn]
        for m in targets:
            m.compile(**compile_kwargs)
            n += 1
    return n
