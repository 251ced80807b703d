typedef int sm_placeholder_unit;
