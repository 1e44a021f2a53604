using Ferry.Enclave.Migration;

namespace Ferry.Enclave.Tests;

public class BitmapPagesTests
{
    [Fact]
    public void Count_and_last_agree_with_the_enumerated_pages()
    {
        var rng = new Random(11);
        foreach (var bytes in new[] { 0, 1, 7, 8, 9, 64, 1001 })
        {
            foreach (var density in new[] { 0.0, 0.01, 0.5, 1.0 })
            {
                var bitmap = new byte[bytes];
                var expected = new List<long>();
                for (long p = 0; p < bytes * 8L; p++)
                {
                    if (rng.NextDouble() >= density) continue;
                    bitmap[p >> 3] |= (byte)(1 << (int)(p & 7));
                    expected.Add(p);
                }
                var enumerated = new List<long>();
                foreach (var p in BitmapPages.Of(bitmap)) enumerated.Add(p);
                Assert.Equal(expected, enumerated);
                Assert.Equal(expected.Count, BitmapPages.Count(bitmap));
                Assert.Equal(expected.Count == 0 ? -1 : expected[^1], BitmapPages.Last(bitmap));
            }
        }
    }
}
