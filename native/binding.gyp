{
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-ffp-contract=off", "-fPIC"],
    "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno", "-ffp-contract=off"] }
  },
  "targets": [
    {
      "target_name": "gemm",
      "sources": [
        "src/addon.cc", "src/threads.cc", "src/gemm.cc", "src/adamw.cc", "src/elementwise.cc", "src/reduce.cc",
        "src/head.cc", "src/gelu.cc", "src/norm.cc", "src/softmax.cc", "src/kernels/select.cc", "src/kernels/kset-scalar.cc"
      ],
      "ldflags": ["-pthread"],
      "conditions": [
        ["target_arch=='x64'", { "dependencies": ["kernels_avx2", "kernels_avx512", "kernels_avx512_bf16"] }],
        ["target_arch=='arm64'", { "sources": ["src/kernels/kset-neon.cc"] }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kernels_avx2",
          "type": "static_library",
          "sources": ["src/kernels/kset-avx2.cc"],
          "cflags_cc": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma"] }
        },
        {
          "target_name": "kernels_avx512",
          "type": "static_library",
          "sources": ["src/kernels/kset-avx512.cc"],
          "cflags_cc": ["-mavx512f", "-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mavx2", "-mfma"] }
        },
        {
          "target_name": "kernels_avx512_bf16",
          "type": "static_library",
          "sources": ["src/kernels/bf16-avx512.cc"],
          "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512bf16", "-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mavx512bw", "-mavx512bf16", "-mavx2", "-mfma"] }
        }
      ]
    }]
  ]
}
