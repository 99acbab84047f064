"""PNG files written by hand, for the tests and the fuzz seeds (fuzz/make_seeds.py): any colour
type and bit depth, Adam7 interlacing, palette, tRNS and extra chunks (Pillow writes neither
16-bit colour nor interlaced files). Plain numpy and the standard library only."""
import struct
import zlib

import numpy as np

# Adam7 passes: (x0, y0, dx, dy)
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_chunk(kind, data):
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(samples, bit_depth):
    """One row of samples (ints) packed at bit_depth (big-endian for 16)."""
    if bit_depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    if bit_depth == 8:
        return bytes(int(v) for v in samples)
    per = 8 // bit_depth
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for j in range(per):
            v = int(samples[i + j]) if i + j < len(samples) else 0
            b |= v << (8 - bit_depth * (j + 1))
        out.append(b)
    return bytes(out)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(kind, row, prior, bpp):
    """PNG filter `kind` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth; specification 9.2) of one packed
    row (bytes), given the previous packed row (zeros above the first) and bytes per pixel."""
    x = np.frombuffer(row, np.uint8).astype(np.int64)
    b = np.frombuffer(prior, np.uint8).astype(np.int64)
    a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int64), b[:-bpp]])
    pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, c)}[kind]
    return bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes()


def make_png(img, color_type, bit_depth, palette=None, trns=None, interlace=False, extra=b"", filters=(0,)):
    """A PNG of `img` (H x W x samples-per-pixel ints) written by hand: any colour type and bit
    depth, Adam7 interlacing, palette, tRNS and extra chunks (Pillow writes neither 16-bit colour
    nor interlaced files). Row y is filtered with filters[y % len(filters)]."""
    h, w = img.shape[:2]
    flat = img.reshape(h, w, -1)
    bpp = max(1, flat.shape[2] * bit_depth // 8)

    def raw_of(sub):
        rows = [_pack_row(sub[y].reshape(-1), bit_depth) for y in range(sub.shape[0])]
        prior = [bytes(len(rows[0]))] + rows[:-1]
        return b"".join(filter_row(filters[y % len(filters)], rows[y], prior[y], bpp) for y in range(len(rows)))

    if interlace:
        raw = b""
        for x0, y0, dx, dy in _ADAM7:
            sub = flat[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += raw_of(sub)
    else:
        raw = raw_of(flat)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    body = png_chunk(b"IHDR", ihdr)
    if palette is not None:
        body += png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        body += png_chunk(b"tRNS", trns)
    body += extra + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body
