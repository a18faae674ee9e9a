"""Vision and routing model code in plain PyTorch, as the public repos write it: a
Swin Transformer stage stack (patch embedding, window partition / reverse with
view / permute / roll, a relative position bias table indexed by a registered index
buffer, the shifted-window attention mask, PatchMerging, DropPath with
`torch.jit.is_scripting()` guards, channels-last LayerNorm), a ConvNeXt stage
(depthwise 7x7, channels-last LayerNorm via permute, layer scale), a DETR head (box
conversions, generalized IoU, `torch.cdist` L1 cost, a greedy scipy-free matcher,
the set-prediction loss), YOLO-style post-processing (grid decoding, `nms`,
`batched_nms`), a GNN on `index_add_` / `scatter_reduce` message passing, and a
top-k routed mixture-of-experts layer (`torch.where`, `bincount`, `index_select`,
`index_add_`, load-balancing loss)."""
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from typing import List, Optional, Tuple

try:
    from torchvision.ops import boxes as box_ops
except ImportError:                         # pragma: no cover - torchvision is optional
    box_ops = None


def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def set_weights(model, scale=0.2):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(model.state_dict().items())):
            if p.dtype.is_floating_point:
                p.copy_(W(*p.shape, seed=100 + i) * scale)


def grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------- Swin
def to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def drop_path(x, drop_prob: float = 0., training: bool = False, scale_by_keep: bool = True):
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self):
        return f"drop_prob={round(self.drop_prob, 3):0.3f}"


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def window_partition(x, window_size: int):
    B, H, W_, C = x.shape
    x = x.view(B, H // window_size, window_size, W_ // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)


def window_reverse(windows, window_size: int, H: int, W_: int):
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size, W_ // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W_, C)


def get_relative_position_index(win_h: int, win_w: int):
    coords = torch.stack(torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing="ij"))
    coords_flatten = torch.flatten(coords, 1)
    relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
    relative_coords = relative_coords.permute(1, 2, 0).contiguous()
    relative_coords[:, :, 0] += win_h - 1
    relative_coords[:, :, 1] += win_w - 1
    relative_coords[:, :, 0] *= 2 * win_w - 1
    return relative_coords.sum(-1)


class WindowAttention(nn.Module):
    def __init__(self, dim, num_heads, window_size=2, qkv_bias=True, attn_drop=0., proj_drop=0.):
        super().__init__()
        self.dim = dim
        self.window_size = to_2tuple(window_size)
        win_h, win_w = self.window_size
        self.window_area = win_h * win_w
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * win_h - 1) * (2 * win_w - 1), num_heads))
        self.register_buffer("relative_position_index", get_relative_position_index(win_h, win_w), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)
        self.softmax = nn.Softmax(dim=-1)

    def _get_rel_pos_bias(self) -> torch.Tensor:
        relative_position_bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(self.window_area, self.window_area, -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()
        return relative_position_bias.unsqueeze(0)

    def forward(self, x, mask: Optional[torch.Tensor] = None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn + self._get_rel_pos_bias()
        if mask is not None:
            num_win = mask.shape[0]
            attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.softmax(attn)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B_, N, -1)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, input_resolution, num_heads=2, window_size=2, shift_size=0,
                 mlp_ratio=2., drop_path=0., norm_layer=nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.shift_size = shift_size
        if min(self.input_resolution) <= self.window_size:
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        assert 0 <= self.shift_size < self.window_size, "shift_size must in 0-window_size"
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=to_2tuple(self.window_size))
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
        if self.shift_size > 0:
            H, W_ = self.input_resolution
            img_mask = torch.zeros((1, H, W_, 1))
            cnt = 0
            for h in (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                      slice(-self.shift_size, None)):
                for w in (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                          slice(-self.shift_size, None)):
                    img_mask[:, h, w, :] = cnt
                    cnt += 1
            mask_windows = window_partition(img_mask, self.window_size)
            mask_windows = mask_windows.view(-1, self.window_size * self.window_size)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
        else:
            attn_mask = None
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def _attn(self, x):
        B, H, W_, C = x.shape
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        else:
            shifted_x = x
        x_windows = window_partition(shifted_x, self.window_size)
        x_windows = x_windows.view(-1, self.window_size * self.window_size, C)
        attn_windows = self.attn(x_windows, mask=self.attn_mask)
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, C)
        shifted_x = window_reverse(attn_windows, self.window_size, H, W_)
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        return x

    def forward(self, x):
        B, H, W_, C = x.shape
        x = x + self.drop_path(self._attn(self.norm1(x)))
        x = x.reshape(B, -1, C)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.reshape(B, H, W_, C)


class PatchMerging(nn.Module):
    def __init__(self, dim, out_dim=None, norm_layer=nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim or 2 * dim
        self.norm = norm_layer(4 * dim)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x):
        B, H, W_, C = x.shape
        x = x.reshape(B, H // 2, 2, W_ // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    def __init__(self, img_size=8, patch_size=2, in_chans=3, embed_dim=8, norm_layer=None):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        self.grid_size = tuple(s // p for s, p in zip(self.img_size, self.patch_size))
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x):
        B, C, H, W_ = x.shape
        if not torch.jit.is_scripting():
            torch._assert(H == self.img_size[0], f"Input height ({H}) doesn't match model ({self.img_size[0]}).")
        x = self.proj(x).permute(0, 2, 3, 1)       # NHWC
        return self.norm(x)


class SwinTransformer(nn.Module):
    def __init__(self, img_size=8, patch_size=2, in_chans=3, num_classes=5, embed_dim=8,
                 depths=(2, 2), num_heads=(2, 4), window_size=2, drop_path_rate=0.1):
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, nn.LayerNorm)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]
        layers = []
        dim, res = embed_dim, self.patch_embed.grid_size
        for i, depth in enumerate(depths):
            if i > 0:
                layers.append(PatchMerging(dim))
                dim, res = dim * 2, (res[0] // 2, res[1] // 2)
            for j in range(depth):
                layers.append(SwinTransformerBlock(
                    dim, res, num_heads[i], window_size, shift_size=0 if j % 2 == 0 else window_size // 2,
                    drop_path=dpr[sum(depths[:i]) + j]))
        self.layers = nn.Sequential(*layers)
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.grad_checkpointing = False

    @torch.jit.ignore
    def no_weight_decay(self):
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}

    def forward_features(self, x):
        x = self.patch_embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            from torch.utils.checkpoint import checkpoint_sequential
            x = checkpoint_sequential(self.layers, 2, x, use_reentrant=False)
        else:
            x = self.layers(x)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def make_swin():
    model = SwinTransformer()
    set_weights(model, 0.3)
    return model, (W(2, 3, 8, 8, seed=1),)


def case_swin_forward_grads_and_training():
    model, (x,) = make_swin()
    model.eval()
    out = model(x)
    out.logsumexp(-1).sum().backward()
    g = grads(model)
    model.zero_grad()
    model.grad_checkpointing = True
    out_ckpt = model(x)
    out_ckpt.logsumexp(-1).sum().backward()
    g_ckpt = grads(model)
    model.grad_checkpointing = False
    # training with drop path: a no-weight-decay param group, AdamW, label smoothing
    model.train()
    decay = [p for n, p in model.named_parameters() if n not in model.no_weight_decay() and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if n in model.no_weight_decay() or p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    for m in model.modules():
        if isinstance(m, DropPath):
            m.drop_prob = 0.0                 # random streams differ between libraries
    y = torch.tensor([1, 3])
    losses = []
    for _ in range(2):
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    blk = model.layers[1]
    return [out, g["patch_embed.proj.weight"], g["layers.1.attn.relative_position_bias_table"],
            g_ckpt["layers.1.attn.relative_position_bias_table"], out_ckpt, losses, blk.attn_mask,
            blk.attn.relative_position_index, sorted(model.no_weight_decay()),
            "layers.1.attn_mask" in model.state_dict(), str(DropPath(0.1)),
            drop_path(x, 0.5, training=True).shape]


# ---------------------------------------------------------------- ConvNeXt
class LayerNorm(nn.Module):
    """LayerNorm that supports channels_last (default) or channels_first inputs."""

    def __init__(self, normalized_shape, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.data_format = data_format
        if self.data_format not in ["channels_last", "channels_first"]:
            raise NotImplementedError
        self.normalized_shape = (normalized_shape,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    def __init__(self, dim, drop_path=0., layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones((dim)), requires_grad=True) \
            if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x):
        input = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)   # (N, C, H, W) -> (N, H, W, C)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        if self.gamma is not None:
            x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return input + self.drop_path(x)


class ConvNeXt(nn.Module):
    def __init__(self, in_chans=3, num_classes=4, depths=(1, 1), dims=(8, 16)):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=2, stride=2),
            LayerNorm(dims[0], eps=1e-6, data_format="channels_first")))
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm(dims[i], eps=1e-6, data_format="channels_first"),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i], drop_path=0.1) for _ in range(depths[i])])
                                    for i in range(len(dims)))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean([-2, -1])))


def make_convnext():
    model = ConvNeXt()
    set_weights(model, 0.3)
    return model.eval(), (W(2, 3, 8, 8, seed=2),)


def case_convnext():
    model, (x,) = make_convnext()
    out = model(x)
    out.pow(2).sum().backward()
    return [out, grads(model)["stages.0.0.gamma"], grads(model)["downsample_layers.1.0.weight"]]


# ---------------------------------------------------------------- DETR head and matching
def box_cxcywh_to_xyxy(x):
    x_c, y_c, w, h = x.unbind(-1)
    b = [(x_c - 0.5 * w), (y_c - 0.5 * h), (x_c + 0.5 * w), (y_c + 0.5 * h)]
    return torch.stack(b, dim=-1)


def box_xyxy_to_cxcywh(x):
    x0, y0, x1, y1 = x.unbind(-1)
    b = [(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0), (y1 - y0)]
    return torch.stack(b, dim=-1)


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_box_iou(boxes1, boxes2):
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union, union


def generalized_box_iou(boxes1, boxes2):
    assert (boxes1[:, 2:] >= boxes1[:, :2]).all()
    assert (boxes2[:, 2:] >= boxes2[:, :2]).all()
    iou, union = pairwise_box_iou(boxes1, boxes2)
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, :, 0] * wh[:, :, 1]
    return iou - (area - union) / area


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class DETRHead(nn.Module):
    def __init__(self, hidden_dim=16, num_classes=3, num_queries=5, nheads=2):
        super().__init__()
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.input_proj = nn.Conv2d(8, hidden_dim, kernel_size=1)
        self.transformer = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(hidden_dim, nheads, 32, dropout=0.0, batch_first=True), 1)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)

    def forward(self, features):
        src = self.input_proj(features).flatten(2).permute(0, 2, 1)
        query = self.query_embed.weight.unsqueeze(0).repeat(src.shape[0], 1, 1)
        hs = self.transformer(torch.zeros_like(query) + query, src)
        return {"pred_logits": self.class_embed(hs), "pred_boxes": self.bbox_embed(hs).sigmoid()}


@torch.no_grad()
def greedy_match(outputs, targets, cost_class=1., cost_bbox=5., cost_giou=2.):
    """Hungarian-style matching, greedy on the cost matrix (no scipy)."""
    bs, num_queries = outputs["pred_logits"].shape[:2]
    out_prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
    out_bbox = outputs["pred_boxes"].flatten(0, 1)
    tgt_ids = torch.cat([v["labels"] for v in targets])
    tgt_bbox = torch.cat([v["boxes"] for v in targets])
    C = cost_bbox * torch.cdist(out_bbox, tgt_bbox, p=1) - cost_class * out_prob[:, tgt_ids] \
        - cost_giou * generalized_box_iou(box_cxcywh_to_xyxy(out_bbox), box_cxcywh_to_xyxy(tgt_bbox))
    C = C.view(bs, num_queries, -1).cpu()
    sizes = [len(v["boxes"]) for v in targets]
    indices = []
    for i, c in enumerate(C.split(sizes, -1)):
        c = c[i].clone()
        rows, cols = [], []
        for _ in range(sizes[i]):
            flat = torch.argmin(c)
            r, col = divmod(int(flat), c.shape[1])
            rows.append(r)
            cols.append(col)
            c[r, :] = float("inf")
            c[:, col] = float("inf")
        order = torch.as_tensor(cols).argsort()
        indices.append((torch.as_tensor(rows, dtype=torch.int64)[order],
                        torch.as_tensor(cols, dtype=torch.int64)[order]))
    return indices


def set_criterion(outputs, targets, indices, num_classes=3, eos_coef=0.1):
    empty_weight = torch.ones(num_classes + 1)
    empty_weight[-1] = eos_coef
    src_logits = outputs["pred_logits"]
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for (src, _) in indices])
    target_classes_o = torch.cat([t["labels"][J] for t, (_, J) in zip(targets, indices)])
    target_classes = torch.full(src_logits.shape[:2], num_classes, dtype=torch.int64)
    target_classes[(batch_idx, src_idx)] = target_classes_o
    loss_ce = F.cross_entropy(src_logits.transpose(1, 2), target_classes, empty_weight)
    src_boxes = outputs["pred_boxes"][(batch_idx, src_idx)]
    target_boxes = torch.cat([t["boxes"][i] for t, (_, i) in zip(targets, indices)], dim=0)
    num_boxes = max(target_boxes.shape[0], 1)
    loss_bbox = F.l1_loss(src_boxes, target_boxes, reduction="none").sum() / num_boxes
    loss_giou = (1 - torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src_boxes),
                                                    box_cxcywh_to_xyxy(target_boxes)))).sum() / num_boxes
    return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}


def case_detr_matching_and_loss():
    model = DETRHead()
    set_weights(model, 0.3)
    features = W(2, 8, 3, 3, seed=4)
    targets = [{"labels": torch.tensor([1, 0]), "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2]])},
               {"labels": torch.tensor([2]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
    outputs = model(features)
    indices = greedy_match(outputs, targets)
    losses = set_criterion(outputs, targets, indices)
    total = losses["loss_ce"] + 5 * losses["loss_bbox"] + 2 * losses["loss_giou"]
    total.backward()
    g = grads(model)
    xyxy = box_cxcywh_to_xyxy(targets[0]["boxes"])
    return [outputs["pred_logits"], outputs["pred_boxes"], [list(map(lambda t: t.tolist(), ix)) for ix in indices],
            losses, g["query_embed.weight"], g["bbox_embed.layers.0.weight"], box_xyxy_to_cxcywh(xyxy),
            torch.cdist(W(3, 4), W(5, 4, seed=1)), torch.cdist(W(2, 3, 4), W(2, 5, 4, seed=1), p=1)]


# ---------------------------------------------------------------- YOLO-style post-processing
def make_grid(nx=4, ny=4):
    yv, xv = torch.meshgrid([torch.arange(ny), torch.arange(nx)], indexing="ij")
    return torch.stack((xv, yv), 2).view((1, 1, ny, nx, 2)).float()


def decode_yolo(p, anchors, stride):
    bs, _, ny, nx = p.shape
    na = anchors.shape[0]
    p = p.view(bs, na, -1, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
    y = p.sigmoid()
    grid = make_grid(nx, ny)
    xy = (y[..., 0:2] * 2 - 0.5 + grid) * stride
    wh = (y[..., 2:4] * 2) ** 2 * anchors.view(1, na, 1, 1, 2)
    y = torch.cat((xy, wh, y[..., 4:]), -1)
    return y.view(bs, -1, y.shape[-1])


def xywh2xyxy(x):
    y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def non_max_suppression(prediction, conf_thres=0.25, iou_thres=0.45, max_det=20):
    bs = prediction.shape[0]
    xc = prediction[..., 4] > conf_thres
    output = [torch.zeros((0, 6))] * bs
    for xi, x in enumerate(prediction):
        x = x[xc[xi]]
        if not x.shape[0]:
            continue
        x[:, 5:] *= x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        conf, j = x[:, 5:].max(1, keepdim=True)
        x = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        x = x[x[:, 4].argsort(descending=True)]
        c = x[:, 5:6] * 4096
        boxes, scores = x[:, :4] + c, x[:, 4]
        i = box_ops.nms(boxes, scores, iou_thres)
        output[xi] = x[i[:max_det]]
    return output


def case_yolo_decode_and_nms():
    anchors = torch.tensor([[2., 3.], [4., 5.]])
    p = W(2, 2 * 7, 4, 4, seed=6) * 2
    pred = decode_yolo(p, anchors, stride=8)
    out = [pred, make_grid(3, 2)]
    if box_ops is not None:
        dets = non_max_suppression(pred.clone(), conf_thres=0.3, iou_thres=0.3)
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 9, 10.]])
        scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
        out += [dets, box_ops.nms(boxes, scores, 0.5),
                box_ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.5),
                box_ops.box_iou(boxes, boxes[:2]), box_ops.generalized_box_iou(boxes, boxes[1:]),
                box_ops.box_area(boxes)]
    return out


# ---------------------------------------------------------------- GNN (message passing)
class MessagePassing(nn.Module):
    def __init__(self, aggr="add"):
        super().__init__()
        self.aggr = aggr

    def propagate(self, edge_index, x, edge_weight=None):
        src, dst = edge_index[0], edge_index[1]
        msg = self.message(x.index_select(0, src), edge_weight)
        out = torch.zeros(x.size(0), msg.size(-1), dtype=msg.dtype)
        if self.aggr == "add":
            out.index_add_(0, dst, msg)
        else:
            idx = dst.unsqueeze(-1).expand_as(msg)
            out = out.scatter_reduce(0, idx, msg, reduce=self.aggr, include_self=False)
        return out

    def message(self, x_j, edge_weight):
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j


def add_self_loops(edge_index, num_nodes):
    loop = torch.arange(num_nodes, dtype=edge_index.dtype).unsqueeze(0).repeat(2, 1)
    return torch.cat([edge_index, loop], dim=1)


class GCNConv(MessagePassing):
    def __init__(self, in_channels, out_channels):
        super().__init__(aggr="add")
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, edge_index):
        edge_index = add_self_loops(edge_index, x.size(0))
        row, col = edge_index
        deg = torch.zeros(x.size(0)).scatter_add_(0, col, torch.ones(col.size(0)))
        deg_inv_sqrt = deg.pow(-0.5)
        deg_inv_sqrt[deg_inv_sqrt == float("inf")] = 0
        norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
        return self.propagate(edge_index, self.lin(x), edge_weight=norm) + self.bias


class GATConv(MessagePassing):
    def __init__(self, in_channels, out_channels, heads=2):
        super().__init__(aggr="add")
        self.heads, self.out_channels = heads, out_channels
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))

    def forward(self, x, edge_index):
        H, C = self.heads, self.out_channels
        edge_index = add_self_loops(edge_index, x.size(0))
        src, dst = edge_index
        h = self.lin(x).view(-1, H, C)
        alpha = (h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst]
        alpha = F.leaky_relu(alpha, 0.2)
        # softmax over each node's incoming edges
        amax = torch.full((x.size(0), H), float("-inf")).scatter_reduce(
            0, dst.unsqueeze(-1).expand(-1, H), alpha, reduce="amax", include_self=True)
        alpha = (alpha - amax.index_select(0, dst)).exp()
        denom = torch.zeros(x.size(0), H).index_add_(0, dst, alpha)
        alpha = alpha / denom[dst]
        out = torch.zeros(x.size(0), H, C).index_add_(0, dst, h[src] * alpha.unsqueeze(-1))
        return out.mean(dim=1)


class SAGEConv(MessagePassing):
    def __init__(self, in_channels, out_channels, aggr="mean"):
        super().__init__(aggr=aggr)
        self.lin_l = nn.Linear(in_channels, out_channels)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x, edge_index):
        return self.lin_l(self.propagate(edge_index, x)) + self.lin_r(x)


def global_mean_pool(x, batch):
    size = int(batch.max().item() + 1)
    count = torch.bincount(batch, minlength=size).clamp(min=1).to(x.dtype)
    return torch.zeros(size, x.size(-1)).index_add_(0, batch, x) / count.unsqueeze(-1)


class GNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = GCNConv(4, 8)
        self.conv2 = GATConv(8, 8)
        self.conv3 = SAGEConv(8, 8, aggr="amax")
        self.conv4 = SAGEConv(8, 6, aggr="mean")
        self.head = nn.Linear(6, 2)

    def forward(self, x, edge_index, batch):
        x = F.relu(self.conv1(x, edge_index))
        x = F.elu(self.conv2(x, edge_index))
        x = F.relu(self.conv3(x, edge_index))
        x = self.conv4(x, edge_index)
        return self.head(global_mean_pool(x, batch))


def make_gnn():
    model = GNN()
    set_weights(model, 0.4)
    x = W(7, 4, seed=3)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 4, 5, 6, 2], [1, 0, 2, 1, 4, 3, 6, 5, 0]])
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    return model, (x, edge_index, batch)


def case_gnn_message_passing():
    model, (x, edge_index, batch) = make_gnn()
    y = torch.tensor([0, 1, 1])
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        out = model(x, edge_index, batch)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return [losses, model(x, edge_index, batch), model.conv2.att_src.grad, global_mean_pool(x, batch)]


# ---------------------------------------------------------------- mixture of experts
class Expert(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    def __init__(self, dim=8, hidden=16, num_experts=4, top_k=2, capacity_factor=None):
        super().__init__()
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList([Expert(dim, hidden) for _ in range(num_experts)])

    def forward(self, x):
        orig_shape = x.shape
        x = x.view(-1, x.shape[-1])
        logits = self.gate(x)
        probs = F.softmax(logits, dim=1, dtype=torch.float)
        weights, selected = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(x.dtype)
        out = torch.zeros_like(x)
        # tokens per expert: the load-balancing auxiliary loss (Switch Transformer)
        counts = torch.bincount(selected.flatten(), minlength=self.num_experts)
        expert_mask = F.one_hot(selected, num_classes=self.num_experts).permute(2, 1, 0)
        for e, expert in enumerate(self.experts):
            idx, top = torch.where(expert_mask[e])
            if top.numel() == 0:
                continue
            tokens = x.index_select(0, top)
            y = expert(tokens) * weights[top, idx, None]
            out.index_add_(0, top, y.to(x.dtype))
        frac_tokens = counts.float() / selected.numel()
        frac_probs = probs.mean(0)
        aux_loss = self.num_experts * (frac_tokens * frac_probs).sum()
        return out.view(orig_shape), aux_loss, counts


def make_moe():
    model = MoE()
    set_weights(model, 0.4)
    return model, (W(2, 5, 8, seed=7),)


def case_moe_routing():
    model, (x,) = make_moe()
    out, aux, counts = model(x)
    (out.pow(2).mean() + 0.01 * aux).backward()
    g = grads(model)
    # a dense reference: every expert on every token, weights from the same routing
    flat = x.view(-1, 8)
    probs = F.softmax(model.gate(flat), -1)
    w, sel = probs.topk(2)
    w = w / w.sum(-1, keepdim=True)
    dense = torch.stack([e(flat) for e in model.experts], 1)
    ref = (dense.gather(1, sel[..., None].expand(-1, -1, 8)) * w[..., None]).sum(1)
    return [out, aux, counts, g["gate.weight"], g["experts.2.w1.weight"], ref.view_as(out)]
