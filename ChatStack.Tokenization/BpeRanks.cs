using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Immutable open-addressing map from token bytes to rank, looked up by span so merging allocates nothing.
/// Built once from the encoding data of Microsoft.ML.Tokenizers; safe to share between threads.
/// </summary>
/// <remarks>
/// Each slot holds the token's first 8 bytes, its length and rank, so the short keys that byte-pair merging looks
/// up (almost all of them) cost one memory access; only longer tokens compare the rest of their bytes in a blob.
/// </remarks>
internal sealed class BpeRanks
{
    private struct Slot
    {
        public ulong Head;   // first (up to) 8 bytes, little-endian, zero-padded
        public int Length;   // 0 = empty slot
        public int Rank;
        public int Offset;   // start of the bytes after the head in _blob (tokens longer than 8 bytes)
    }

    private readonly Slot[] _slots;
    private readonly byte[] _blob;
    private readonly int _mask;

    internal BpeRanks(IReadOnlyDictionary<ReadOnlyMemory<byte>, int> encoder)
    {
        int count = encoder.Count;
        int total = 0;
        foreach (var kv in encoder)
        {
            total += Math.Max(0, kv.Key.Length - 8);
        }
        _blob = new byte[total];
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(count * 2));
        _slots = new Slot[size];
        _mask = size - 1;
        int pos = 0;
        foreach (var kv in encoder)
        {
            ReadOnlySpan<byte> key = kv.Key.Span;
            if (key.IsEmpty)
            {
                continue;
            }
            int slot = (int)Hash(key) & _mask;
            while (_slots[slot].Length != 0)
            {
                slot = (slot + 1) & _mask;
            }
            _slots[slot] = new Slot { Head = Head(key), Length = key.Length, Rank = kv.Value, Offset = pos };
            MaxTokenLength = Math.Max(MaxTokenLength, key.Length);
            if (key.Length > 8)
            {
                key[8..].CopyTo(_blob.AsSpan(pos));
                pos += key.Length - 8;
            }
        }
        Count = count;
    }

    internal int Count { get; }

    /// <summary>Bytes of the longest token: a longer piece is never one token.</summary>
    internal int MaxTokenLength { get; }

    /// <summary>Rank of <paramref name="bytes"/>, or <see cref="int.MaxValue"/> if it is not a token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int Get(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return int.MaxValue;
        }
        ulong head = Head(bytes);
        int slot = (int)Hash(bytes, head) & _mask;
        while (true)
        {
            ref Slot s = ref _slots[slot];
            if (s.Length == 0)
            {
                return int.MaxValue;
            }
            if (s.Head == head && s.Length == bytes.Length
                && (bytes.Length <= 8 || bytes[8..].SequenceEqual(_blob.AsSpan(s.Offset, bytes.Length - 8))))
            {
                return s.Rank;
            }
            slot = (slot + 1) & _mask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Head(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 8)
        {
            return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        }
        ulong v = 0;
        for (int k = bytes.Length - 1; k >= 0; k--)
        {
            v = (v << 8) | bytes[k];
        }
        return v;
    }

    private static uint Hash(ReadOnlySpan<byte> bytes) => Hash(bytes, Head(bytes));

    // Multiply-xorshift over the head and any further 8-byte words; tokens are mostly 2-16 bytes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(ReadOnlySpan<byte> bytes, ulong head)
    {
        ulong h = ((ulong)bytes.Length * 0x9E3779B97F4A7C15UL) ^ head;
        h *= 0xFF51AFD7ED558CCDUL;
        h ^= h >> 29;
        if (bytes.Length > 8)
        {
            bytes = bytes[8..];
            while (bytes.Length >= 8)
            {
                h = (h ^ BinaryPrimitives.ReadUInt64LittleEndian(bytes)) * 0xC4CEB9FE1A85EC53UL;
                h ^= h >> 29;
                bytes = bytes[8..];
            }
            h = (h ^ Head(bytes)) * 0xC4CEB9FE1A85EC53UL;
        }
        h ^= h >> 32;
        h *= 0x9E3779B97F4A7C15UL;
        return (uint)(h >> 32);
    }
}
