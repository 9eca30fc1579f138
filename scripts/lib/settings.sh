# Sourced by scripts/experiments-seeds and scripts/vanilla-budget: the supervision keys of each
# Fashion-MNIST setting of issue 18 (as inputs/fmnist/<setting>-*.yaml), for --set.
# setting_supervision NAME [WHO]: prints the KEY=VALUE words; an unknown NAME is an error
# naming WHO (the calling script).
setting_supervision() {
  case "$1" in
    sym40) echo "supervision.kind=noisy supervision.noise=symmetric supervision.rate=0.4" ;;
    # the deck's fixed transition at the share of wrong labels the setting makes (0.4 of the
    # flipped classes' labels: 0.16 of all, spread evenly in the model; the structure not known)
    asym40) echo "supervision.kind=noisy supervision.noise=asymmetric supervision.rate=0.4 method.transition_init=0.16" ;;
    partial-random) echo "supervision.kind=partial supervision.partial=random supervision.q=0.5" ;;
    partial-class50) echo "supervision.kind=partial supervision.partial=class50" ;;
    ssl1) echo "supervision.kind=unlabeled supervision.labeled_fraction=0.01" ;;
    ssl10) echo "supervision.kind=unlabeled supervision.labeled_fraction=0.1" ;;
    clean) echo "supervision.kind=clean" ;;
    *) echo "${2:-settings}: unknown setting '$1' (sym40, asym40, partial-random, partial-class50, ssl1, ssl10, clean)" >&2
       return 2 ;;
  esac
}
