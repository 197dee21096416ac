{
  "targets": [
    {
      "target_name": "gemm",
      "sources": ["src/addon.cc", "src/threads.cc", "src/gemm.cc", "src/adamw.cc", "src/elementwise.cc", "src/reduce.cc", "src/head.cc", "src/gelu.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-march=native", "-std=c++17", "-fno-math-errno", "-ffp-contract=off"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-march=native", "-std=c++17", "-ffp-contract=off"] },
      "ldflags": ["-pthread"]
    }
  ]
}
