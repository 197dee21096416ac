{
  "targets": [
    {
      "target_name": "gemm",
      "sources": ["gemm.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-march=native", "-std=c++17", "-fno-math-errno", "-ffp-contract=off"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-march=native", "-std=c++17", "-ffp-contract=off"] },
      "ldflags": ["-pthread"]
    }
  ]
}
