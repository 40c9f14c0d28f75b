namespace ChatStack.Tokenization;

/// <summary>tiktoken's byte-pair merge: repeatedly merge the adjacent pair of lowest rank, leftmost first.</summary>
internal static class BytePairEncoder
{
    /// <summary>Appends the token ids of one piece's UTF-8 bytes (a piece that is not itself a token).</summary>
    internal static void Encode(BpeRanks ranks, ReadOnlySpan<byte> piece, List<int> output)
    {
        int n = piece.Length;
        if (n == 1)
        {
            output.Add(ranks.Get(piece));
            return;
        }
        // starts[k] is where part k begins; rank[k] is the rank of parts k and k+1 merged.
        int[] starts = new int[n + 1];
        int[] rank = new int[n + 1];
        int count = n + 1;
        for (int k = 0; k <= n; k++)
        {
            starts[k] = k;
        }
        for (int k = 0; k < n - 1; k++)
        {
            rank[k] = ranks.Get(piece.Slice(k, 2));
        }
        rank[n - 1] = int.MaxValue;
        rank[n] = int.MaxValue;

        while (true)
        {
            int min = int.MaxValue, at = -1;
            for (int k = 0; k < count - 1; k++)
            {
                if (rank[k] < min)
                {
                    min = rank[k];
                    at = k;
                }
            }
            if (at < 0)
            {
                break;
            }
            // Part at+1 disappears; re-rank the merged part with its right neighbour and its left neighbour with it.
            Array.Copy(starts, at + 2, starts, at + 1, count - at - 2);
            Array.Copy(rank, at + 2, rank, at + 1, count - at - 2);
            count--;
            rank[at] = RankOf(ranks, piece, starts, count, at);
            if (at > 0)
            {
                rank[at - 1] = RankOf(ranks, piece, starts, count, at - 1);
            }
        }
        for (int k = 0; k < count - 1; k++)
        {
            output.Add(ranks.Get(piece[starts[k]..starts[k + 1]]));
        }
    }

    // Rank of parts k and k+1 merged, or MaxValue when there is no part k+1.
    private static int RankOf(BpeRanks ranks, ReadOnlySpan<byte> piece, int[] starts, int count, int k)
        => k + 2 < count ? ranks.Get(piece[starts[k]..starts[k + 2]]) : int.MaxValue;
}
