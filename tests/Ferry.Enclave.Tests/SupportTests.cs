using Ferry.Enclave.Tracking;

namespace Ferry.Enclave.Tests;

public unsafe class SupportTests
{
    [Fact]
    public void Detection_reports_the_features_kernel_tracking_needs()
    {
        var s = UserfaultfdSupport.Current;
        Assert.True(s.Available, "userfaultfd is required by this test but unavailable: " + s.DirtyTrackingUnavailableReason);
        Assert.NotEmpty(s.OpenedVia);
        Assert.True(s.WriteProtectAsync, $"UFFD_FEATURE_WP_ASYNC missing: {s}");
        Assert.True(s.WriteProtectUnpopulated, $"UFFD_FEATURE_WP_UNPOPULATED missing: {s}");
        Assert.True(s.PagemapScan, $"PAGEMAP_SCAN missing: {s}");
        Assert.True(s.Missing, $"missing-page mode unusable: {s}");
        Assert.True(s.DirtyTrackingVerified, $"the dirty-tracking self-test failed: {s.DirtyTrackingUnavailableReason}");
        Assert.True(s.CanTrackDirtyPages);
        Assert.True(s.CanServeMissingPages);
        Assert.Null(s.DirtyTrackingUnavailableReason);
        Assert.Contains("WP_ASYNC", s.ToString());
    }

    [Fact]
    public void Asking_for_a_feature_the_kernel_lacks_gives_a_typed_error_with_the_reason()
    {
        Kernel.RequireDirtyTracking();
        var e = Assert.Throws<TrackingUnavailableException>(() => Userfaultfd.Create(1UL << 62));
        Assert.Contains("lacks userfaultfd features bit62", e.Reason);
        Assert.StartsWith("kernel-based tracking is unavailable: ", e.Message);
    }

    [Fact]
    public void The_device_fallback_opens_a_working_userfaultfd()
    {
        Kernel.RequireMissingPages();
        Assert.True(File.Exists("/dev/userfaultfd"), "/dev/userfaultfd is required by this test (Linux 6.1+)");
        var fd = Userfaultfd.OpenRaw(out var via, out var reason, deviceOnly: true);
        Assert.True(fd >= 0, "opening /dev/userfaultfd failed: " + reason);
        try
        {
            Assert.Equal("/dev/userfaultfd", via);
            var api = new Native.UffdioApi { Api = Native.UFFD_API };
            Assert.Equal(0, Native.ioctl(fd, Native.UFFDIO_API, &api));
            Assert.Equal(UserfaultfdSupport.Current.Features, api.Features);
        }
        finally
        {
            Native.close(fd);
        }
    }

    [Fact]
    public void Ioctl_numbers_match_the_kernel_headers()
    {
        // Values printed by a C program compiled against this machine's linux/userfaultfd.h, and for PAGEMAP_SCAN
        // (absent from Debian's headers) against the struct from include/uapi/linux/fs.h (see docs/tracking.md).
        Assert.Equal((nuint)0xc018aa3f, Native.UFFDIO_API);
        Assert.Equal((nuint)0xc020aa00, Native.UFFDIO_REGISTER);
        Assert.Equal((nuint)0x8010aa01, Native.UFFDIO_UNREGISTER);
        Assert.Equal((nuint)0x8010aa02, Native.UFFDIO_WAKE);
        Assert.Equal((nuint)0xc028aa03, Native.UFFDIO_COPY);
        Assert.Equal((nuint)0xc020aa04, Native.UFFDIO_ZEROPAGE);
        Assert.Equal((nuint)0xc018aa06, Native.UFFDIO_WRITEPROTECT);
        Assert.Equal((nuint)0xaa00, Native.USERFAULTFD_IOC_NEW);
        Assert.Equal((nuint)0xc0606610, Native.PAGEMAP_SCAN);
    }
}
